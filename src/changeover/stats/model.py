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

The sampler: the batched static HMC of ``stats.hmc`` (dense metric, 24
leapfrog steps, 0.95 target acceptance, 500 warm-up + 500 draws x 4 chains),
kept rather than replaced by NUTS from a library: after the
reparameterisation the sampled posterior is small (the labelled cells only)
and close to Gaussian, and batching every comparison and chain into one
numpy/numba pass keeps the overhead per step shared. nutpie / NumPyro /
BlackJAX were not installed or measured here (no time in this change); the
remaining divergences (0-5 per 1,200 transitions in some weakly labelled
two-segment fits, where the learned spreads form a mild funnel) are the case
where an adaptive-length NUTS would be the next thing to measure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from changeover.stats.design import N_TAU, TAU_MEDIAN, U_MASS, Z0, Z1, Design, design, label_likelihood
from changeover.stats.hmc import sample
from changeover.stats.likelihood import eta_rows, loglik
from changeover.stats.tables import PairTable

__all__ = ["Z0", "Z1", "AnnotatorNoise", "FitSettings", "PairFit", "fit_pairs"]

NOISE_A, NOISE_B = 1.0, 9.0  # Beta prior of the annotator noise (with several annotators per response)


@dataclass
class FitSettings:
    """Sampler settings. ``draws`` per chain after ``warmup``; ``steps`` leapfrog steps per transition."""

    chains: int = 4
    warmup: int = 500
    draws: int = 500
    steps: int = 24
    seed: int = 0
    target_accept: float = 0.95


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


# --------------------------------------------------------------------------- the batched posterior


class _Posterior:
    """Log posterior and gradient in unconstrained coordinates, batched over B = fits x chains.

    theta per batch element: the design's parameters (padded to the largest
    design; padding is N(0, 1) and enters nothing) | log tau [N_TAU] | logit
    noise per annotator [A] (padded likewise; an exact annotator's, or every
    one's in a table without several verdicts per response, is padding too).
    """

    def __init__(self, designs: list[Design], chains: int):
        F = len(designs)
        self.designs, self.chains = designs, chains
        self.P0 = P0 = max(d.P for d in designs)
        self.A = A = max(d.A for d in designs)
        self.P = P0 + N_TAU + A
        R = max(d.E * 3 for d in designs)
        E = max(d.E for d in designs)
        nnz = max(1, max(d.idx.size for d in designs))
        Jl = max(1, max(int(d.labelled.sum()) for d in designs))
        loc, sd, group = np.zeros((F, P0)), np.ones((F, P0)), np.zeros((F, P0), np.int64)
        centered = np.zeros((F, P0), bool)
        ptr = np.zeros((F, R + 1), np.int64)
        idx = np.zeros((F, nnz), np.int64)
        allowed = np.ones((F, E, 4), np.bool_)
        row = np.zeros((F, Jl), np.int64)
        n = np.zeros((F, Jl))
        agree, disagree = np.zeros((F, Jl, 2, 2, A)), np.zeros((F, Jl, 2, 2, A))
        noisy = np.zeros(F, np.bool_)
        active = np.zeros((F, A), np.bool_)  # annotators with a noise rate of their own
        tau_log_sd = np.ones((F, N_TAU))
        for f, d in enumerate(designs):
            tau_log_sd[f] = d.tau_log_sd
            loc[f, : d.P], sd[f, : d.P], group[f, : d.P] = d.loc, d.sd, d.group
            centered[f, : d.P] = d.centered
            ptr[f, : d.ptr.size] = d.ptr
            ptr[f, d.ptr.size :] = d.ptr[-1]
            idx[f, : d.idx.size] = d.idx
            allowed[f, : d.E] = d.allowed
            lab = np.flatnonzero(d.labelled)
            row[f, : lab.size] = d.row_of_cell[lab]
            n[f, : lab.size] = d.n[lab]
            agree[f, : lab.size, ..., : d.A], disagree[f, : lab.size, ..., : d.A] = d.agree[lab], d.disagree[lab]
            noisy[f] = d.noisy
            active[f, : d.A] = d.noisy & ~d.exact

        def rep(x: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(np.repeat(x, chains, axis=0))

        self.loc, self.sd, self.group, self.centered = rep(loc), rep(sd), rep(group), rep(centered)
        onehot = np.stack([(self.group == g + 1) for g in range(N_TAU)], -1).astype(float)  # [B,P0,4]
        self.onehot_nc = onehot * ~self.centered[..., None]
        self.onehot_c = onehot * self.centered[..., None]
        self.ptr, self.idx, self.allowed = rep(ptr), rep(idx), rep(allowed)
        self.row, self.n, self.agree, self.disagree = rep(row), rep(n), rep(agree), rep(disagree)
        self.noisy = rep(noisy)
        self.active = rep(active)
        self.tau_log_sd = rep(tau_log_sd)

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        P0 = self.P0
        return theta[:, :P0], theta[:, P0 : P0 + N_TAU], theta[:, P0 + N_TAU :]

    def scales(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(multiplier of theta in w, tau of each parameter's prior) per parameter, [B, P0] each."""
        scales = np.concatenate([np.ones((tau.shape[0], 1)), tau], axis=1)
        per = np.take_along_axis(scales, self.group, axis=1)
        return np.where(self.centered, 1.0, per), np.where(self.centered, per, 1.0)

    def effective(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(w [B, P0], tau [B, N_TAU], noise [B, A]) from theta."""
        th0, log_tau, u = self.split(theta)
        tau = np.exp(np.clip(log_tau, -30, 5))
        w = th0 * self.scales(tau)[0]
        noise = np.where(self.active, 1.0 / (1.0 + np.exp(-np.clip(u, -50, 50))), 0.0)
        return w, tau, noise

    def __call__(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # early warm-up trajectories can overflow; they come back as -inf / nan and are rejected
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._log_posterior(theta)

    def _log_posterior(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        th0, log_tau, u = self.split(theta)
        w, tau, noise = self.effective(theta)
        ll, g_w, g_u = loglik(
            w, self.ptr, self.idx, self.allowed, self.row, self.n, self.agree, self.disagree, noise, self.noisy
        )
        scale, prior_tau = self.scales(tau)
        sd = self.sd * prior_tau
        dev = (th0 - self.loc) / sd
        lp = ll - 0.5 * (dev**2).sum(1) - np.log(prior_tau).sum(1)
        grad = np.empty_like(theta)
        grad[:, : self.P0] = g_w * scale - dev / sd
        z = (log_tau - np.log(TAU_MEDIAN)) / self.tau_log_sd
        lp += (-0.5 * z**2).sum(1)
        grad[:, self.P0 : self.P0 + N_TAU] = (
            np.einsum("bp,bpk->bk", g_w * w, self.onehot_nc)
            + np.einsum("bp,bpk->bk", dev**2 - 1.0, self.onehot_c)
            - z / self.tau_log_sd
        )
        lp += np.where(
            self.active, NOISE_A * np.log(np.maximum(noise, 1e-300)) + NOISE_B * np.log1p(-noise), -0.5 * u**2
        ).sum(1)
        grad[:, self.P0 + N_TAU :] = np.where(self.active, g_u + NOISE_A * (1.0 - noise) - NOISE_B * noise, -u)
        return lp, grad

    def initial(self, rng: np.random.Generator) -> np.ndarray:
        B = self.loc.shape[0]
        theta = np.empty((B, self.P))
        theta[:, : self.P0] = self.loc + 0.3 * rng.standard_normal((B, self.P0))
        theta[:, self.P0 : self.P0 + N_TAU] = np.log(TAU_MEDIAN) + 0.3 * self.tau_log_sd * rng.standard_normal(
            (B, N_TAU)
        )
        theta[:, self.P0 + N_TAU :] = -2.2 + 0.3 * rng.standard_normal((B, self.A))
        return theta


def fit_pairs(tables: list[PairTable], settings: FitSettings | None = None) -> list[PairFit]:
    """Fit every comparison (jointly batched) and return one ``PairFit`` per table.

    Deterministic for a seed; a longer run (more draws) is just another call.
    """
    settings = settings or FitSettings()
    if not tables:
        return []
    C = settings.chains
    designs = [design(t) for t in tables]
    post = _Posterior(designs, C)
    rng = np.random.default_rng(settings.seed)
    run = sample(post, post.initial(rng), rng, settings.warmup, settings.draws, settings.steps, settings.target_accept)
    T = settings.draws
    fits = []
    for f, (t, d) in enumerate(zip(tables, designs, strict=True)):
        sl = slice(f * C, (f + 1) * C)
        theta = np.moveaxis(run.draws[:, sl], 1, 0).reshape(C * T, post.P)  # chain-major
        w, tau, noise = _effective_one(post, theta, f)
        cond = eta_rows(w[:, : d.P], d.ptr, d.idx, d.allowed)  # [C*T, E, 4]
        g = np.random.default_rng([settings.seed, f, 7]).gamma(U_MASS / d.U + d.n_su[None], size=(C * T, d.S, d.U))
        pu = g / np.maximum(g.sum(-1, keepdims=True), 1e-300)
        fits.append(
            PairFit(
                table=t,
                design=d,
                pu=pu.reshape(C, T, d.S, d.U),
                cond=cond.reshape(C, T, d.E, 4),
                noise=noise[:, : d.A].reshape(C, T, d.A),
                tau=tau.reshape(C, T, N_TAU),
                accept=float(run.accept[sl].mean()),
                divergences=int(run.divergences[sl].sum()),
            )
        )
    return fits


def _effective_one(post: _Posterior, theta: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """post.effective for draws of fit f (its rows of the batch constants)."""
    b = f * post.chains
    th0, log_tau, u = post.split(theta)
    tau = np.exp(np.clip(log_tau, -30, 5))
    scales = np.concatenate([np.ones((theta.shape[0], 1)), tau], axis=1)
    w = th0 * np.where(post.centered[b], 1.0, scales[:, post.group[b]])
    noise = np.where(post.active[b], 1.0 / (1.0 + np.exp(-np.clip(u, -50, 50))), 0.0)
    return w, tau, noise
