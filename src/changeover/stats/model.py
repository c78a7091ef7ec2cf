"""The Bayesian measurement model, fitted on count tables: P(signals | segment) x P(truth | signals, segment).

For one comparison (incumbent = model 0, candidate = model 1, one dimension),
an item in segment s has a *signal cell* u (the levels of every signal on both
answers, "missing" a level of its own, and whether either answer's truth is
known without a label) and a truth cell c = (Z0, Z1). The joint is written in
the reverse direction, around what the data pin down:

    P(u, c | s) = P(u | s) x P(c | u, s)

- P(u | s) ~ Dirichlet(U_MASS / U each): every item informs it, labelled or
  not; its posterior is a Dirichlet, drawn exactly (independent draws).
- P(c | u, s) = softmax(eta[s, u]): a log-linear model (``stats.design``):
  a truth profile per segment (pooled, spread tau_a), each model's signal
  coefficients (log odds ratios per level, per model, with per-segment
  deviations pooled by tau_b: the judge errs differently per segment), a joint
  interaction of several signals on one answer (tau_i) and a deviation per
  joint signal cell of the two answers (tau_d: the judge's errors on the two
  answers to one item may be correlated). Labels inform it, and only it.
- Known truth (an error response is unacceptable): the truth cells that
  contradict it get probability 0.
- Human labels: each annotator's verdict equals Z, or, with several annotators
  per response (or a settled answer to check them against), annotator a's
  verdict is flipped with probability ``noise[a]`` ~ Beta(1, 9), independently
  per annotator, estimated from their disagreements with each other and with
  the settled answers (gold items, admin resolutions: an *exact* annotator,
  noise 0). Verdicts without an annotator's name share one rate (the unnamed
  annotator ''), which is the one shared rate every table had before
  annotators were told apart. Why per annotator (measured, seeded,
  benchmarks/bench_annotators.py): with one of four annotators flipping 35% of
  verdicts and doing half of the candidate's labels, one shared rate misreads
  the candidate (segment coverage 50%, overall 17%, 64 seeds); a rate per
  annotator recovers the bad one (0.345) and keeps coverage (94.8% / 93.8%). Independent Beta(1, 9) priors, not
  pooled: a pooled spread between annotators is informed by a handful of
  rates and would pull the bad annotator toward the good ones.

Quantities: pi[s, c] = sum_u P(u | s) P(c | u, s); delta[s] = pi[s, 01] -
pi[s, 10]. The judge's confusion per model (and per segment) P(signal | Z) and
the dependence of its errors across the two answers are derived by Bayes.
Because labels enter only through P(c | u, s), choosing which items to label
by their signal cell (what the labelling queue does) is ignorable.

Why this form (measured, see benchmarks/README.md "Sampler"): the first model
wrote P(signal | truth) (the judge's confusion) and summed the truth out. With
many unlabelled items the judge's marginal pass rates are pinned exactly and
the split into truth and confusion lies on a thin curved ridge: the fixed-step
HMC gave R-hat 1.13-2.8, ESS 5-26 and divergences at production scale. In the
reverse form the unlabelled items and the labels inform separate factors, the
first is conjugate, and the sampled part sees only the labelled cells (a few
dozen), so its cost is flat in the number of items and its posterior is close
to Gaussian.

Measured (seeded; benchmarks/README.md "Measurement model" has the tables):
- Production scale (6 segments x 10^4-10^6 items, 0.05-1% labelled, judge
  sens 0.85-0.95, spec 0.75-0.9, 0.3 lower on the candidate): with the
  default settings R-hat <= 1.009, bulk ESS >= 629, tail ESS >= 584, no
  divergence (tests/core/test_model_scale.py); the forward form gave R-hat
  1.13-2.8, ESS 5-26 and divergences.
- XSTest, all 20 ordered pairs, 40 / 80 / 120 labelled prompts: segment
  coverage 96% / 98-99% / 98% (6 seeds; was 65% / 75% / 76%), narrower than
  before (overall width 0.23 / 0.16 / 0.13 at 120 labels, was 0.16 at 120).
- What did not work, on the way: learned half-normal spreads (funnel: tau's
  ESS 11-40 at 10^4+ labels), a learned spread over the joint-cell deviations
  (curved ridge with the main effects: up to 71 divergences), centring
  deviations that no label informs (divergences), a fixed per-segment judge
  spread of 0.5 (XSTest segment coverage 84-95%) or 2.0 (power on the
  "better" simulation fell from 24% to 12.5% GO).

The sampler ("auto", the default): NUTS by nutpie for every fit (``stats.nuts``:
diagonal mass matrix adapted from draws and gradients, target acceptance 0.8,
0.975 where the posterior is stiffer than its Laplace approximation says
(``stats.nuts.Frame.stiff``: 10^6 items per segment with 0.5% labelled),
150 warm-up + 300 draws x 4 chains) on the compiled log posterior
(``stats.likelihood``) through a C callback, in coordinates whitened by the
fit's Laplace approximation where that approximation holds (production scale:
many labels), in theta elsewhere; a fit that diverges is sampled again by NUTS
at target acceptance 0.95, and if it diverges there too, by the static HMC of
``stats.hmc`` (dense metric, 16 leapfrog steps, 0.95 target acceptance, 500 +
500 x 4), which then has as many rounds as NUTS had (``assessment.sampling``).
Until 2026-12-02 the fits whose approximation does not hold (few labels) went
to the HMC from the start: NUTS in theta had diverged on a lone transition in
22 of 25 XSTest assessments with safe / unsafe segments, and handed to the HMC
then, 8-13 of 25 had ended unconverged against 6 of 25 with the HMC alone
(three rounds, no NUTS retry at 0.95). With the retry at 0.95, a fourth round
and the HMC's full rounds after a hand-over, NUTS first is better on both
counts (XSTest, safe / unsafe segments, 120 labelled prompts, label draws =
seeds 0-49, ``assess`` as shipped): 0 of 50 unconverged (HMC first: 6 of 50),
172 s of CPU against 273 s (at 40 / 80 labelled prompts, 25 draws each: 0 and 0,
as with the HMC first, once the policy also hands the HMC a NUTS fit that is
out of rounds or of length; 0.7x the CPU); 3 x 3 x 6 at 10^3-10^4 items per
segment (30-50 labels per segment), under the policy: 1.7-2.1 s against 5.0-5.6 s.
Measured (CPU seconds, seeded; stats.nuts and
benchmarks/README.md "2. Fit time"), 3 candidates x 3 dimensions x 6 segments:
- numpy sampler, 24 steps (before): 18.8 s.
- compiled static HMC, 16 steps: 4.3-4.6 s, R-hat <= 1.007, bulk ESS >= 736,
  tail ESS >= 893 (576,000 gradients).
- nutpie, whitened (what "auto" takes for these fits, ~200 labels per segment): 1.56-1.69 s at 10^3-10^6
  items per segment, R-hat <= 1.008, bulk / tail ESS >= 820 / 508, no divergence (150-170k
  gradients). A hand-written NUTS (stats.hmc says how) had not held the
  diagnostics on the non-concave strongly-labelled fits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields

import numpy as np
from threadpoolctl import threadpool_limits

from changeover.stats import hmc, nuts
from changeover.stats.design import N_TAU, TAU_MEDIAN, U_MASS, Z0, Z1, Design, design, label_likelihood
from changeover.stats.likelihood import NOISE_A, NOISE_B, eta_rows, log_posterior_batch, pack
from changeover.stats.tables import PairTable

__all__ = ["NOISE_A", "NOISE_B", "Z0", "Z1", "AnnotatorNoise", "FitSettings", "PairFit", "fit_pairs"]


SAMPLER_DEFAULTS = {"nuts": (150, 300, 0.8), "hmc": (500, 500, 0.95)}  # warm-up, draws, target acceptance
SAMPLERS = ("auto", "nuts", "hmc")


@dataclass
class FitSettings:
    """Sampler settings. ``sampler``: "auto" (the default) and "nuts" draw every fit by nutpie's NUTS
    (``stats.nuts``), in coordinates whitened by the fit's Laplace approximation where it holds, else in theta;
    they differ in what the sampling policy does after divergences (``assessment.sampling.after_divergences``:
    under "auto" the static HMC of ``stats.hmc`` takes over a fit that diverged at the retry's target
    acceptance, under "nuts" NUTS keeps it); "hmc": the static HMC for every fit. ``draws`` per chain
    after ``warmup``, each times ``scale`` (the sampling policy's longer rounds); the step size adapted toward
    ``target_accept``; ``steps`` leapfrog steps per transition (HMC only). Unset ``warmup`` / ``draws`` /
    ``target_accept`` are each fit's sampler's: 150 / 300 / 0.8 for NUTS, 500 / 500 / 0.95 for the HMC."""

    chains: int = 4
    warmup: int | None = None
    draws: int | None = None
    steps: int = 16
    seed: int = 0
    target_accept: float | None = None
    sampler: str = "auto"
    scale: int = 1

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}: use one of {', '.join(SAMPLERS)}")

    def lengths(self, sampler: str) -> tuple[int, int, float]:
        """(warm-up, draws, target acceptance) of a fit sampled by ``sampler`` ("nuts" or "hmc")."""
        warmup, draws, target = SAMPLER_DEFAULTS[sampler]
        return (
            (warmup if self.warmup is None else self.warmup) * self.scale,
            (draws if self.draws is None else self.draws) * self.scale,
            target if self.target_accept is None else self.target_accept,
        )


@dataclass(frozen=True, slots=True)
class AnnotatorNoise:
    """One annotator's posterior noise (P(their verdict is flipped)) in one comparison, and their verdicts in it."""

    name: str
    noise_mean: float
    lower: float
    upper: float
    labels: int


@dataclass
class PairFit:
    """Posterior draws of one comparison; arrays are [chains, draws, ...].

    ``cond`` = P(truth cell c | row e = segment x signal cell), ``pu`` =
    P(signal cell u | segment s); everything else is derived from these two.
    """

    table: PairTable
    design: Design
    pu: np.ndarray  # [C, T, S, U]
    cond: np.ndarray  # [C, T, E, 4]
    noise: np.ndarray  # [C, T, A] each annotator's noise (design.annotators; 0 for an exact one, or without noise)
    tau: np.ndarray  # [C, T, 4] spreads: truth profile between segments, judge between segments, signals, joint
    accept: float  # mean acceptance rate after warm-up
    divergences: int
    sampler: str = "hmc"  # the sampler that drew it ("nuts" or "hmc"), its warm-up and target acceptance
    warmup: int = 0
    target_accept: float = 0.95
    frame: nuts.Frame | None = None  # its Laplace approximation (``nuts.laplace``; None under sampler "hmc")
    pi: np.ndarray = field(init=False)  # [C, T, S, 4] truth cells per segment

    def __post_init__(self) -> None:
        d = self.design
        c4 = self.cond.reshape(self.cond.shape[:2] + (d.S, d.U, 4))
        self.pi = np.einsum("ctsu,ctsuk->ctsk", self.pu, c4)

    @property
    def incumbent_rate(self) -> np.ndarray:
        """P(Z0 = 1) per segment, [C, T, S]."""
        return self.pi[..., 2] + self.pi[..., 3]

    @property
    def candidate_rate(self) -> np.ndarray:
        return self.pi[..., 1] + self.pi[..., 3]

    @property
    def delta(self) -> np.ndarray:
        """Candidate minus incumbent pass rate per segment, [C, T, S]."""
        return self.pi[..., 1] - self.pi[..., 2]

    @staticmethod
    def overall(values: np.ndarray, shares: np.ndarray) -> np.ndarray:
        """Traffic-weighted average over segments of a [..., S] quantity."""
        shares = np.asarray(shares, dtype=float)
        return values @ (shares / shares.sum())

    @staticmethod
    def flat(values: np.ndarray) -> np.ndarray:
        """Merge the chain and draw axes."""
        return values.reshape(-1, *values.shape[2:])

    # ------------------------------------------------------------------ the judge, derived by Bayes

    def _joint(self) -> np.ndarray:
        """P(segment s, signal cell u, truth cell c) with segments weighted by their items, [C, T, S, U, 4]."""
        d = self.design
        ns = d.n_su.sum(1)
        c4 = self.cond.reshape(self.cond.shape[:2] + (d.S, d.U, 4))
        return self.pu[..., None] * c4 * (ns / max(ns.sum(), 1.0))[:, None, None]

    def confusion_by_segment(self, signal: int = 0) -> np.ndarray:
        """P(signal level k | truth z) per model and segment, [C, T, S, 2 (model), 2 (z), K].

        Over the responses whose signal is present and whose truth is not known
        without a label; a segment's confusion is partially pooled with the others'.
        """
        d = self.design
        K = d.levels[signal]
        joint = self._joint()
        out = []
        for m, zc in ((0, Z0), (1, Z1)):
            jz = np.stack([joint[..., zc == 0].sum(-1), joint[..., zc == 1].sum(-1)], -1)  # [C,T,S,U,2]
            lev = d.lev[:, m, signal]
            onehot = ((lev[:, None] == np.arange(K)[None, :]) & (d.known[:, m] < 0)[:, None]).astype(float)
            pk = np.einsum("ctsuz,uk->ctszk", jz, onehot)
            out.append(pk / np.maximum(pk.sum(-1, keepdims=True), 1e-300))
        return np.stack(out, axis=3)

    def confusion(self, signal: int = 0) -> np.ndarray:
        """P(signal level k | truth z) per model over all segments, [C, T, 2 (model), 2 (z), K]."""
        d = self.design
        K = d.levels[signal]
        joint = self._joint().sum(2)  # [C,T,U,4]
        out = []
        for m, zc in ((0, Z0), (1, Z1)):
            jz = np.stack([joint[..., zc == 0].sum(-1), joint[..., zc == 1].sum(-1)], -1)  # [C,T,U,2]
            lev = d.lev[:, m, signal]
            onehot = ((lev[:, None] == np.arange(K)[None, :]) & (d.known[:, m] < 0)[:, None]).astype(float)
            pk = np.einsum("ctuz,uk->ctzk", jz, onehot)
            out.append(pk / np.maximum(pk.sum(-1, keepdims=True), 1e-300))
        return np.stack(out, axis=2)

    @property
    def phi(self) -> np.ndarray:
        """Alias of ``confusion(0)`` (the primary signal), [C, T, 2, 2, K]."""
        return self.confusion(0)

    def error_dependence(self, signal: int = 0) -> np.ndarray:
        """How much more often the signal is wrong on both answers than independence given the truth predicts.

        P(wrong on both) / sum_c P(c) P(wrong on the incumbent's | c) P(wrong on the
        candidate's | c), [C, T]; 1 = errors independent given the truth cell c.
        "Wrong": the level is in the upper half (k >= ceil(K/2), "says
        acceptable") while the truth is unacceptable, or in the lower half while
        it is acceptable; over items where both answers carry the signal and
        neither truth is known without a label. XSTest llama2orig -> llama2new
        measured 2.5 (counted on all 450 human labels).
        """
        d = self.design
        K = d.levels[signal]
        joint = self._joint().sum(2)  # [C,T,U,4]
        lev = d.lev[:, :, signal]
        valid: np.ndarray = np.asarray((lev < K).all(1) & (d.known < 0).all(1))
        says: np.ndarray = np.asarray(lev >= (K + 1) // 2)  # [U, 2]
        w0 = says[:, 0][:, None] != (Z0[None, :] == 1)  # [U, 4]
        w1 = says[:, 1][:, None] != (Z1[None, :] == 1)
        jv = joint * valid[:, None]
        pc = np.maximum(jv.sum(-2), 1e-300)  # [C,T,4]
        both = (jv * (w0 & w1)).sum((-1, -2))
        indep = ((jv * w0).sum(-2) * (jv * w1).sum(-2) / pc).sum(-1)
        return both / np.maximum(indep, 1e-300)

    # ------------------------------------------------------------------ the annotators

    def annotator_noise(self, prob: float = 0.95) -> list[AnnotatorNoise]:
        """Each (not exact) annotator's posterior noise: mean, equal-tailed interval, verdicts in the table."""
        d, t = self.design, self.table
        flat = PairFit.flat(self.noise)
        verdicts = (t.votes(0)[..., 1] + t.votes(1)[..., 1]) * t.n[:, None]  # [J, A]
        out = []
        q = (1 - prob) / 2
        for a, name in enumerate(d.annotators):
            if d.exact[a]:
                continue
            lo, hi = np.quantile(flat[:, a], [q, 1 - q])
            out.append(AnnotatorNoise(name, float(flat[:, a].mean()), float(lo), float(hi), int(verdicts[:, a].sum())))
        return out

    # ------------------------------------------------------------------ for the choice of labels

    def p_acceptable(self, model: int) -> np.ndarray:
        """P(Z_model = 1 | count-table cell j, draw) for every draw and cell, [draws, J]."""
        d = self.design
        cond = PairFit.flat(self.cond)[:, d.row_of_cell]  # [N, J, 4]
        w = cond * label_likelihood(d, PairFit.flat(self.noise))
        w = w / np.maximum(w.sum(-1, keepdims=True), 1e-300)
        zm = Z0 if model == 0 else Z1
        return w[..., zm == 1].sum(-1)


# --------------------------------------------------------------------------- the posterior the sampler sees


class _Posterior:
    """Log posterior and gradient in unconstrained coordinates (``stats.likelihood.log_posterior``), per fit.

    theta of fit f: its design's parameters [P_f] | log tau [N_TAU] | logit
    noise per annotator [A_f] (an exact annotator's, or every one's in a table
    without several verdicts per response, is N(0, 1) padding that enters
    nothing). A batch is [B, P] with P the largest fit's length, padded at the
    end; ``fit_of[b]`` names each row's fit (fits x chains, chain-minor).
    """

    def __init__(self, designs: list[Design], chains: int):
        self.designs, self.chains = designs, chains
        self.data = pack(designs)
        self.dims = np.array([d.P + N_TAU + d.A for d in designs], np.int64)
        self.P = int(self.dims.max())
        self.P0 = max(d.P for d in designs)
        self.A = max(d.A for d in designs)
        self.fit_of = np.repeat(np.arange(len(designs)), chains)

    def __call__(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return log_posterior_batch(theta, self.fit_of, self.data)

    def effective_of(self, theta: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(w [N, P_f], tau [N, N_TAU], noise [N, A_f]) from rows theta [N, >= P_f + N_TAU + A_f] of fit f."""
        d = self.designs[f]
        th0, log_tau, u = theta[:, : d.P], theta[:, d.P : d.P + N_TAU], theta[:, d.P + N_TAU : d.P + N_TAU + d.A]
        tau = np.exp(np.clip(log_tau, -30, 5))
        scales = np.concatenate([np.ones((theta.shape[0], 1)), tau], axis=1)
        w = th0 * np.where(d.centered, 1.0, scales[:, d.group])
        noise = np.where(d.noisy & ~d.exact, 1.0 / (1.0 + np.exp(-np.clip(u, -50, 50))), 0.0)
        return w, tau, noise

    def effective(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(w [B, P0], tau [B, N_TAU], noise [B, A]) from a batch, padded with zeros."""
        B = theta.shape[0]
        w, tau, noise = np.zeros((B, self.P0)), np.zeros((B, N_TAU)), np.zeros((B, self.A))
        for b, f in enumerate(self.fit_of[:B]):
            wf, tf, nf = self.effective_of(theta[b : b + 1], int(f))
            w[b, : wf.shape[1]], tau[b], noise[b, : nf.shape[1]] = wf[0], tf[0], nf[0]
        return w, tau, noise

    def center(self, f: int) -> np.ndarray:
        """Fit f's prior centre (``initial`` draws the chains' starting points around it): the mode search's start."""
        d = self.designs[f]
        return np.concatenate([d.loc, np.log(TAU_MEDIAN), np.full(d.A, -2.2)]).astype(float)

    def initial(self, seed: int, chains: int, keys: list[int]) -> np.ndarray:
        """Each chain's starting point, from its own stream (seed, the fit's ``design_key``, chain)."""
        theta = np.zeros((self.fit_of.size, self.P))
        for b, f in enumerate(self.fit_of.tolist()):
            d = self.designs[f]
            z = np.random.default_rng([seed, keys[f], b % chains, 11]).standard_normal(self.dims[f])
            spread = np.concatenate([np.ones(d.P), d.tau_log_sd, np.ones(d.A)])  # log tau: its prior's sd
            theta[b, : self.dims[f]] = self.center(f) + 0.3 * spread * z
        return theta


def design_key(d: Design) -> int:
    """A 63-bit key of what the model sees of a comparison (every array of its design), for its random streams."""
    h = hashlib.blake2b(repr((d.S, d.U, d.levels, d.noisy)).encode(), digest_size=8)
    for f in fields(d):
        value = getattr(d, f.name)
        if isinstance(value, np.ndarray):
            h.update(np.ascontiguousarray(value).tobytes())
    return int.from_bytes(h.digest(), "little") >> 1


def fit_pairs(
    tables: list[PairTable], settings: FitSettings | None = None, frames: list[nuts.Frame | None] | None = None
) -> list[PairFit]:
    """Fit every comparison (one compiled call over fits x chains) and return one ``PairFit`` per table.

    ``frames``: the tables' Laplace approximations where already known (``PairFit.frame`` of an earlier fit
    of the same table: it depends on the table alone), so a refit does not search the mode again.

    Deterministic for a seed, and a fit's draws do not depend on the other tables of the call nor on its
    place among them: each chain's stream is keyed by (seed, ``design_key``, chain), so ``assess`` (every
    candidate in one call) and the rollout's ``p_regression`` (one) draw the same for the same table.

    BLAS runs on one thread here (threadpoolctl): its matrices are small (the Laplace step's eigen- and QR
    decompositions at D <= ~200, the check's products), and OpenBLAS's threads spin while they wait: on 2 cores,
    3x3x6 at 10^4 items per segment under the sampling policy took 3.6 s of CPU with them, 2.1 s without (the
    Laplace step 1.0 s -> 0.14 s for the 9 fits; measured 2026-12-02).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_pairs(tables, settings, frames)


def _fit_pairs(
    tables: list[PairTable], settings: FitSettings | None, frames: list[nuts.Frame | None] | None
) -> list[PairFit]:
    settings = settings or FitSettings()
    if not tables:
        return []
    C = settings.chains
    designs = [design(t) for t in tables]
    post = _Posterior(designs, C)
    keys = [design_key(d) for d in designs]
    seeds = np.array(
        [
            np.random.SeedSequence([settings.seed, keys[f], c]).generate_state(1)[0]
            for f in range(len(designs))
            for c in range(C)
        ],
        np.int64,
    )
    start, dims = post.initial(settings.seed, C, keys), post.dims[post.fit_of]
    laplace: dict[int, nuts.Frame] = {}  # the check's draws come from the design's own stream: whether a fit is
    if settings.sampler != "hmc":  # sampled whitened depends on its table alone
        for f in range(len(designs)):
            known = None if frames is None else frames[f]
            laplace[f] = known if known is not None else nuts.laplace(post.data, f, post.center(f), keys[f])
    used = "hmc" if settings.sampler == "hmc" else "nuts"  # one sampler per call ("auto": NUTS for every fit)
    warmup, T, target = settings.lengths(used)
    if used == "nuts":
        run = nuts.sample(post.data, start, post.fit_of, dims, seeds, warmup, T, target, laplace)
    else:
        run = hmc.sample(post.data, start, post.fit_of, dims, seeds, warmup, T, settings.steps, target)
    fits = []
    for f, (t, d) in enumerate(zip(tables, designs, strict=True)):
        sl = np.flatnonzero(post.fit_of == f)
        theta = np.moveaxis(run.draws[:, sl], 1, 0).reshape(C * T, post.P)  # chain-major
        w, tau, noise = post.effective_of(theta, f)
        cond = eta_rows(w, d.ptr, d.idx, d.allowed)  # [C*T, E, 4]
        g = np.random.default_rng([settings.seed, keys[f], 7]).gamma(
            U_MASS / d.U + d.n_su[None], size=(C * T, d.S, d.U)
        )
        pu = g / np.maximum(g.sum(-1, keepdims=True), 1e-300)
        fits.append(
            PairFit(
                table=t,
                design=d,
                pu=pu.reshape(C, T, d.S, d.U),
                cond=cond.reshape(C, T, d.E, 4),
                noise=noise.reshape(C, T, d.A),
                tau=tau.reshape(C, T, N_TAU),
                accept=float(run.accept[sl].mean()),
                divergences=int(run.divergences[sl].sum()),
                sampler=used,
                warmup=warmup,
                target_accept=nuts.first_target(laplace.get(f), target),  # no frames under "hmc": target
                frame=laplace.get(f),
            )
        )
    return fits
