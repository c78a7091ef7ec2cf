"""The Bayesian measurement model and its sampler, run on count tables.

For one comparison (incumbent = model 0, candidate = model 1, one dimension):

- Paired truth: (Z0, Z1) of an item in segment s falls in cell c in
  {00, 01, 10, 11} with probability pi[s] = softmax(m + SEGMENT_SPREAD * raw[s]),
  raw[s] ~ N(0, I), m ~ N(0, 1.5^2): segments are shrunk toward a shared,
  learned profile; a small segment borrows strength from the large ones.
- Measurement: P(signal = k | Z_m = z) = phi[m, z, k] =
  softmax(phi0[z] + JUDGE_SPREAD * raw[m, z])_k, raw ~ N(0, I): each
  model has its own judge confusion, partially pooled around a shared profile
  phi0. This is what lets labels on the candidate reveal a judge that is
  kinder to it. phi0[z] has a mild prior that higher signal levels go with
  acceptable answers, only to break the label-switching symmetry.
- Human labels: each annotator's verdict equals Z, or, with several annotators
  per response, is flipped with probability ``noise`` ~ Beta(1, 9), estimated
  from their disagreements. With one annotator per response there is nothing
  to estimate it from, and the label *is* the human verdict, as in DESIGN.md.
- Unlabelled items and missing signals enter through the likelihood with Z
  summed out: a cell's likelihood is sum_c pi[s, c] * P(signals, labels | c).

Two departures from DESIGN.md's first sketch, both measured here:
- Gibbs sampling with the truth imputed mixed badly: with ~10% of items
  labelled the imputed truths and the judge confusion move together, and the
  delta's effective sample size was 14-100 of 2,400 draws (R-hat up to 1.2).
  Summing Z out and running HMC with analytic gradients fixes that.
- The hierarchical Dirichlet priors (pi[s] ~ Dir(kappa mu)) form a funnel
  that HMC crosses slowly (kappa's ESS ~60), and so did a logistic-normal
  hierarchy with a sampled spread (ESS 8-17 for the spreads: with hundreds of
  items per segment the data pin the segments, and with two models the judge
  spread is barely identified). The spreads are therefore fixed constants
  (logit sd 0.75 between segments, 1.0 between the models' judges): partial
  pooling around a learned shared profile, with no funnel. A segment with a
  few dozen items moves freely; one with five is pulled toward the others.
  Known cost (benchmarks/README.md): a regressing segment is pulled ~1.9
  points toward its healthy neighbours; a spread of 1.25 cut that to ~1.4 but
  lowered simulated coverage (95.3% -> 93.9%, within noise), so 0.75 stays
  until a larger calibration run settles it.

Several comparisons are fitted at once, stacked on a leading batch axis with
the chains (cells, segments and levels padded), so the numpy overhead per
leapfrog step is paid once for all candidates x dimensions x chains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from changeover.stats.likelihood import Z0, Z1, _log_posterior
from changeover.stats.tables import PairTable

__all__ = ["Z0", "Z1", "FitSettings", "PairFit", "fit_pairs"]

PI_LOC_SD = 1.5  # prior sd of the shared truth-cell logits
SEGMENT_SPREAD = 0.75  # how much segments differ from the shared profile (logit sd)
PHI_LOC_SD = 1.5  # prior sd of the shared judge profile's logits
JUDGE_SPREAD = 1.0  # how much the judge differs between models (logit sd)
ORIENT = 0.5  # mild prior tilt: higher signal levels go with acceptable answers
NOISE_A, NOISE_B = 1.0, 9.0
_TINY = 1e-300


@dataclass
class FitSettings:
    chains: int = 4
    warmup: int = 300
    draws: int = 250
    steps: int = 12
    seed: int = 0


@dataclass
class PairFit:
    """Posterior draws of one comparison; arrays are [chains, draws, ...]."""

    table: PairTable
    pi: np.ndarray  # [C, T, S, 4]
    phi: np.ndarray  # [C, T, 2, 2, K]
    noise: np.ndarray  # [C, T]
    accept: float  # mean acceptance rate after warm-up
    divergences: int

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

    def confusion(self, signal: int = 0) -> np.ndarray:
        """P(signal level k | truth z) per model, [chains, draws, 2 (incumbent/candidate), 2 (z), K]."""
        if signal != 0:
            raise ValueError(f"this fit has one signal; signal {signal} does not exist")
        return self.phi

    def confusion_by_segment(self, signal: int = 0) -> np.ndarray:
        """P(signal level k | truth z) per model and segment, [chains, draws, S, 2, 2, K]."""
        phi = self.confusion(signal)
        S = self.pi.shape[2]
        return np.broadcast_to(phi[:, :, None], phi.shape[:2] + (S,) + phi.shape[2:])

    def error_dependence(self, signal: int = 0) -> np.ndarray:
        """P(signal wrong on both answers) / (P(wrong on incumbent's) x P(wrong on candidate's)), [chains, draws].

        "Wrong": the signal's level is in the upper half (k >= ceil(K/2), "says acceptable")
        while the truth is unacceptable, or in the lower half while it is acceptable.
        Segments are weighted by their items. 1 = independent errors.
        """
        phi = self.confusion(signal)  # [C,T,2,2,K]
        K = phi.shape[-1]
        says = np.arange(K) >= (K + 1) // 2
        wrong = np.stack([phi[..., 0, :][..., says].sum(-1), phi[..., 1, :][..., ~says].sum(-1)], -1)  # [C,T,m,z]
        w = np.bincount(self.table.seg, weights=self.table.n, minlength=self.pi.shape[2]).astype(float)
        pi = np.einsum("ctsk,s->ctk", self.pi, w)
        pi = pi / pi.sum(-1, keepdims=True)  # [C,T,4]
        e0 = wrong[..., 0, :][..., Z0]  # [C,T,4]
        e1 = wrong[..., 1, :][..., Z1]
        both = (pi * e0 * e1).sum(-1)
        return both / np.maximum((pi * e0).sum(-1) * (pi * e1).sum(-1), 1e-300)

    def p_acceptable(self, model: int) -> np.ndarray:
        """P(Z_model = 1 | count-table cell j, draw) for every draw and cell, [draws, J]."""
        t = self.table
        pi = PairFit.flat(self.pi)  # [T,S,4]
        phi = PairFit.flat(self.phi)  # [T,2,2,K]
        T = pi.shape[0]
        phi_ext = np.concatenate([phi, np.ones((T, 2, 2, 1))], axis=-1)
        lik0 = phi_ext[:, 0][:, :, np.minimum(t.a0, t.levels)]  # [T, z, J]
        lik1 = phi_ext[:, 1][:, :, np.minimum(t.a1, t.levels)]
        w = pi[:, t.seg, :] * np.transpose(lik0, (0, 2, 1))[..., Z0] * np.transpose(lik1, (0, 2, 1))[..., Z1]
        for m, (pos, tot) in enumerate(((t.pos0, t.tot0), (t.pos1, t.tot1))):
            z = Z0 if m == 0 else Z1
            agree = np.where(z[None, :] == 1, pos[:, None], (tot - pos)[:, None])  # [J,4]
            consistent = (agree == tot[:, None]) | (tot[:, None] > 1)
            w = w * consistent[None]
        w = w / np.maximum(w.sum(-1, keepdims=True), 1e-300)
        zm = Z0 if model == 0 else Z1
        return w[..., zm == 1].sum(-1)


# --------------------------------------------------------------------------- softmax pieces


def _softmax(eta: np.ndarray, mask: np.ndarray) -> np.ndarray:
    e = np.where(mask > 0, eta, -np.inf)
    e = np.exp(e - e.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------- batched data


@dataclass
class _Batch:
    """Comparisons padded to common sizes and repeated per chain: leading axis B = fits x chains."""

    seg: np.ndarray  # [B, J]
    n: np.ndarray  # [B, J]
    a: np.ndarray  # [B, 2, J]      (K = missing)
    agree: np.ndarray  # [B, 2, J, 2]   annotators agreeing with z = 0 / 1
    disagree: np.ndarray  # [B, 2, J, 2]
    seg_mask: np.ndarray  # [B, S]
    lev_mask: np.ndarray  # [B, K]
    noisy: np.ndarray  # [B] bool
    S: int
    K: int


def _batch(tables: list[PairTable], chains: int) -> _Batch:
    F = len(tables)
    J = max(1, max(t.cells for t in tables))
    S = max(t.n_segments for t in tables)
    K = max(t.levels for t in tables)
    seg = np.zeros((F, J), np.int64)
    n = np.zeros((F, J), float)
    a = np.full((F, 2, J), K, np.int64)
    pos = np.zeros((F, 2, J))
    tot = np.zeros((F, 2, J))
    seg_mask = np.zeros((F, S))
    lev_mask = np.zeros((F, K))
    noisy = np.zeros(F, bool)
    for f, t in enumerate(tables):
        c = t.cells
        seg[f, :c] = t.seg
        n[f, :c] = t.n
        for m, arr in enumerate((t.a0, t.a1)):
            a[f, m, :c] = np.where(arr >= t.levels, K, arr)
        pos[f, 0, :c], tot[f, 0, :c], pos[f, 1, :c], tot[f, 1, :c] = t.pos0, t.tot0, t.pos1, t.tot1
        seg_mask[f, : t.n_segments] = 1.0
        lev_mask[f, : t.levels] = 1.0
        noisy[f] = t.multi_annotator
    agree = np.stack([tot - pos, pos], axis=-1)
    disagree = tot[..., None] - agree

    def rep(x: np.ndarray) -> np.ndarray:
        return np.repeat(x, chains, axis=0)

    return _Batch(rep(seg), rep(n), rep(a), rep(agree), rep(disagree), rep(seg_mask), rep(lev_mask), rep(noisy), S, K)


# --------------------------------------------------------------------------- the log posterior


class _Posterior:
    """Log posterior and its gradient in unconstrained coordinates, batched over B.

    theta per batch element: m_pi [4] | raw_pi [S,4] | phi0 [2,K] |
    raw_phi [2,2,K] | logit noise. Segment logits are m_pi + SEGMENT_SPREAD *
    raw_pi[s]; judge logits are phi0[z] + JUDGE_SPREAD * raw_phi[m,z].
    """

    def __init__(self, d: _Batch):
        self.d = d
        S, K = d.S, d.K
        sizes = [4, S * 4, 2 * K, 4 * K, 1]
        self.cuts = np.cumsum([0, *sizes])
        self.P = int(self.cuts[-1])
        B = d.n.shape[0]
        self.phi_mask = np.broadcast_to(d.lev_mask[:, None, None, :], (B, 2, 2, K))
        self.phi0_mask = np.broadcast_to(d.lev_mask[:, None, :], (B, 2, K))
        self.all4 = np.ones((B, S, 4))
        ramp = np.zeros((B, K))
        for b in range(B):
            k = int(d.lev_mask[b].sum())
            ramp[b, :k] = np.linspace(-ORIENT, ORIENT, k)
        self.phi0_loc = np.stack([-ramp, ramp], axis=1)  # [B, z, K]
        self.kvalid = d.lev_mask.sum(-1).astype(np.int64)
        self.phi0_loc = np.ascontiguousarray(self.phi0_loc)

    def split(self, theta: np.ndarray) -> list[np.ndarray]:
        B, (S, K), c = theta.shape[0], (self.d.S, self.d.K), self.cuts
        return [
            theta[:, c[0] : c[1]],
            theta[:, c[1] : c[2]].reshape(B, S, 4),
            theta[:, c[2] : c[3]].reshape(B, 2, K),
            theta[:, c[3] : c[4]].reshape(B, 2, 2, K),
            theta[:, c[4]],
        ]

    def constrained(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        m_pi, raw_pi, phi0, raw_phi, u = self.split(theta)
        pi = _softmax(m_pi[:, None, :] + SEGMENT_SPREAD * raw_pi, self.all4)
        phi = _softmax(phi0[:, None] + JUDGE_SPREAD * raw_phi, self.phi_mask)
        noise = np.where(self.d.noisy, 1.0 / (1.0 + np.exp(-np.clip(u, -50, 50))), 0.0)
        return {"pi": pi, "phi": phi, "noise": noise}

    def __call__(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log posterior [B], gradient [B, P]), in one compiled pass (likelihood.log_posterior)."""
        d = self.d
        return _log_posterior(
            np.ascontiguousarray(theta),
            d.S,
            d.K,
            self.kvalid,
            self.phi0_loc,
            d.noisy,
            d.seg,
            d.n,
            d.a,
            d.agree,
            d.disagree,
            SEGMENT_SPREAD,
            JUDGE_SPREAD,
            PI_LOC_SD,
            PHI_LOC_SD,
            NOISE_A,
            NOISE_B,
        )


# --------------------------------------------------------------------------- HMC


def _initial(post: _Posterior, rng: np.random.Generator) -> np.ndarray:
    B = post.d.n.shape[0]
    theta = rng.normal(0.0, 0.3, (B, post.P))
    c = post.cuts
    theta[:, c[4]] = -2.2 + rng.normal(0, 0.3, B)
    # start the judge better than chance: signal levels ordered with the truth
    theta[:, c[2] : c[3]] += 2.0 * post.phi0_loc.reshape(B, -1)
    return theta


class _Metric:
    """The HMC metric per batch element: inverse mass = an estimate of the posterior covariance.

    Dense, not diagonal: the judge's confusion and the pass rates are strongly
    correlated when labels are few (a kinder judge and a worse model explain
    the same signals). With 5% labels, 6 segments and 5-level signals a
    diagonal metric left R-hat at 1.12 and ESS at 36 for some deltas.
    """

    def __init__(self, B: int, P: int):
        self.inv = np.broadcast_to(np.eye(P), (B, P, P)).copy()
        self.chol = self.inv.copy()  # Cholesky factor of the mass matrix (for momenta)

    def momentum(self, rng: np.random.Generator) -> np.ndarray:
        B, P, _ = self.inv.shape
        return (self.chol @ rng.standard_normal((B, P, 1)))[..., 0]

    def velocity(self, p: np.ndarray) -> np.ndarray:
        return (self.inv @ p[..., None])[..., 0]

    def kinetic(self, p: np.ndarray) -> np.ndarray:
        return 0.5 * (p * self.velocity(p)).sum(-1)

    def adapt(self, samples: np.ndarray, dense: bool) -> None:
        """Set the metric from warm-up samples [n, B, P] (regularised as Stan does, plus shrinkage)."""
        n, B, P = samples.shape
        x = samples - samples.mean(axis=0)
        if dense:
            cov = np.einsum("nbi,nbj->bij", x, x) / max(n - 1, 1)
            lam = P / (n + P)
            diag = np.einsum("bii->bi", cov)
            cov = (1 - lam) * cov + lam * diag[..., None] * np.eye(P)
        else:
            cov = np.eye(P) * x.var(axis=0)[:, None, :]
        cov = (n / (n + 5.0)) * cov + 1e-3 * (5.0 / (n + 5.0)) * np.eye(P)
        self.inv = cov
        self.chol = np.linalg.cholesky(np.linalg.inv(cov))


def fit_pairs(tables: list[PairTable], settings: FitSettings | None = None) -> list[PairFit]:
    """Fit every comparison (jointly batched) and return one ``PairFit`` per table.

    Static HMC with a jittered step size, tuned by dual averaging toward 65%
    acceptance (measured best ESS per second here: 0.8 realised ~0.93 with
    timid steps, 0.5 diverged). Warm-up: step size only, then a diagonal
    metric from 15-40% of warm-up, a dense one from 40-80%, the step size
    re-tuned after each.
    """
    settings = settings or FitSettings()
    if not tables:
        return []
    rng = np.random.default_rng(settings.seed)
    C, T, W, L = settings.chains, settings.draws, settings.warmup, settings.steps
    d = _batch(tables, C)
    post = _Posterior(d)
    B, P = d.n.shape[0], post.P
    theta = _initial(post, rng)
    lp, grad = post(theta)
    metric = _Metric(B, P)
    log_eps = np.full(B, np.log(0.05))
    mu_da, t0, gamma, k_da, target = np.log(0.5), 10, 0.05, 0.75, 0.65
    h_bar, log_eps_bar = np.zeros(B), np.zeros(B)
    da_iter = 0
    window: list[np.ndarray] = []
    windows = [(int(W * 0.15), int(W * 0.4), False), (int(W * 0.4), int(W * 0.8), True)]
    out: list[np.ndarray] = []
    accepts, divergences = np.zeros(B), np.zeros(B, int)

    for it in range(W + T):
        eps = np.exp(log_eps) * rng.uniform(0.8, 1.2, B)
        p0 = metric.momentum(rng)
        th, g, p = theta.copy(), grad.copy(), p0 + 0.5 * eps[:, None] * grad
        bad = np.zeros(B, bool)
        for step in range(L):
            th = th + eps[:, None] * metric.velocity(p)
            new_lp, g = post(th)
            bad |= ~np.isfinite(new_lp)
            g = np.where(np.isfinite(g), g, 0.0)
            if step < L - 1:
                p = p + eps[:, None] * g
        p = p + 0.5 * eps[:, None] * g
        h0 = lp - metric.kinetic(p0)
        h1 = new_lp - metric.kinetic(p)
        log_a = np.where(bad | ~np.isfinite(h1), -np.inf, np.minimum(0.0, h1 - h0))
        divergent = bad | (h0 - h1 > 1000)
        acc = np.log(rng.random(B)) < log_a
        theta = np.where(acc[:, None], th, theta)
        lp = np.where(acc, new_lp, lp)
        grad = np.where(acc[:, None], g, grad)
        a_prob = np.exp(log_a)

        if it < W:
            da_iter += 1
            w = 1.0 / (da_iter + t0)
            h_bar = (1 - w) * h_bar + w * (target - a_prob)
            log_eps = mu_da - np.sqrt(da_iter) / gamma * h_bar
            eta = da_iter ** (-k_da)
            log_eps_bar = eta * log_eps + (1 - eta) * log_eps_bar
            for start, end, dense in windows:
                if start <= it < end:
                    window.append(theta.copy())
                if it == end - 1 and len(window) > 10:
                    metric.adapt(np.stack(window), dense)
                    window = []
                    mu_da = np.log(np.exp(log_eps) * 2.0)
                    h_bar, log_eps_bar, da_iter = np.zeros(B), np.zeros(B), 0
            if it == W - 1:
                log_eps = log_eps_bar
        else:
            accepts += a_prob
            divergences += divergent
            out.append(theta.copy())

    cons = [post.constrained(th) for th in out]  # T x {name: [B, ...]}

    def gather(name: str, f: int) -> np.ndarray:
        arr = np.stack([c[name] for c in cons])  # [T, B, ...]
        return np.moveaxis(arr[:, f * C : (f + 1) * C], 1, 0)  # [C, T, ...]

    fits = []
    for f, table in enumerate(tables):
        sl = slice(f * C, (f + 1) * C)
        fits.append(
            PairFit(
                table=table,
                pi=gather("pi", f)[:, :, : table.n_segments],
                phi=gather("phi", f)[..., : table.levels],
                noise=gather("noise", f),
                accept=float(accepts[sl].mean() / T),
                divergences=int(divergences[sl].sum()),
            )
        )
    return fits
