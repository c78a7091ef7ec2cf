"""The layout of the measurement model for one count table: signal cells, parameters, priors, index lists.

The model (``stats.model``) writes P(truth cell c = (z0, z1) | signal cell u,
segment s) as a softmax over c of a linear predictor eta[s, u, c], with
eta[., ., 00] = 0 and, for c in {01, 10, 11}:

    eta[s, u, c] = mu[c] + tau_a * ra[s, c]                               truth profile per segment
                 + z0(c) * B0[s, u] + z1(c) * B1[s, u]                    each model's signals
                 + tau_d * rd[p(u), c]                                    joint deviation (correlated errors)
    B_m[s, u]    = sum_g ( beta[m, g, k] + tau_b * rb[m, g, s, k] )       k = level of signal g on model m's answer
                 + tau_i * ri[m, t_m(u)]                                  (several signals: their joint level t_m)

``beta[m, g, 0] = 0`` (level 0 is the reference; the missing level has a
coefficient of its own); every ``r*`` ~ N(0, 1).

The spreads, measured:
- tau_a and tau_b (how much segments differ) are learned, log-normal
  (zero-avoiding: a half-normal let tau fall into the funnel's neck when
  segments were alike and the data strong, tau's ESS 11-40), so the data can
  loosen the pooling when segments really differ. On XSTest the judge's
  relation to the truth reverses between safe and unsafe prompts; a fixed
  tau_b of 0.5 left segment coverage at 84-95%, the learned one gives 96-99%.
- From STRONG_LABELS labelled items on, the spreads are nearly fixed at the
  median (log-sd 0.02): the data then pin every segment and the pooling no
  longer matters, while a learned tau mixed slowly there (delta ESS 180-420).
- Deviations are non-centred, except those informed by >= CENTER_LABELS
  labelled items, which are centred (the funnel otherwise appears with 10^4+
  labels). 300 since 2026-12-01, was 100: 3 candidates x 3 dimensions x 6
  segments at 10^4 items per segment, 0.5% labelled (about 100 labels per
  segment), left divergences in 6 of 9 fits, at the centred truth-profile
  deviations' funnel neck (the chains stuck at log tau_a = -3.2 where its
  mean is -1.4: the segments are alike, and 100 labels do not pin a deviation
  whose spread is that small); at 300, none, and the policy's CPU there went
  from 11.1-23.2 s (2-4 rounds) to 6.1-7.1 s (one round).
- tau_i and tau_d are fixed constants: those deviations are confounded with
  the main effects, and a learned spread over them made a curved ridge
  (divergences with 10^4+ labels).
So eta is a sum of parameters with coefficient 0 or 1,
each scaled by 1 or by its group's tau: per (row = (s, u), c) we keep the list
of parameter indices (CSR), and both the likelihood kernel and the derived
quantities just add them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from changeover.stats.tables import PairTable

# prior constants (see stats.model for why these values)
MU_SD = 2.0  # truth-profile logits
BETA_SD = 2.5  # signal coefficients (log odds ratios against the reference level)
ORIENT = 2.0  # prior mean of the top level's coefficient: higher levels go with acceptable answers
TAU_MEDIAN = np.array([0.75, 0.5])  # the spreads tau_a, tau_b ~ log-normal(log median, log sd)
TAU_LOG_SD = 1.0  # learned when labels are few or moderate ...
STRONG_LABELS = 1000  # ... and (nearly) fixed at the median from this many labelled items on (see below)
TAU_LOG_SD_STRONG = 0.02
TAU_I = 0.5  # fixed spread of the joint level of several signals around their sum
TAU_D = 0.75  # fixed spread of the joint signal cell's deviation (correlated errors)
CENTER_LABELS = 300  # a per-segment deviation informed by at least this many labelled items is sampled centred
U_MASS = 2.0  # total Dirichlet prior mass of P(signal cell | segment), spread evenly over the cells
N_TAU = 2
GROUP_FIXED, GROUP_A, GROUP_B = 0, 1, 2
Z0 = np.array([0, 0, 1, 1])  # incumbent truth in cell c = (z0, z1)
Z1 = np.array([0, 1, 0, 1])  # candidate truth


@dataclass
class Design:
    """Everything the sampler and the derived quantities need about one table (no posterior)."""

    S: int
    U: int
    levels: tuple[int, ...]
    lev: np.ndarray  # [U, 2, G] signal levels of each signal cell (levels[g] = missing)
    known: np.ndarray  # [U, 2] known truth (-1 = unknown)
    n_su: np.ndarray  # [S, U] items per segment and signal cell
    n: np.ndarray  # [J] items per table cell
    row_of_cell: np.ndarray  # [J] row e = s * U + u of each table cell
    ptr: np.ndarray  # [E * 3 + 1] CSR pointers for (row, c = 1..3)
    idx: np.ndarray  # [nnz] parameter indices
    allowed: np.ndarray  # [E, 4] truth cells consistent with known truth
    agree: np.ndarray  # [J, 2, 2, A] verdicts agreeing with z = 0 / 1, per model and annotator
    disagree: np.ndarray  # [J, 2, 2, A]
    labelled: np.ndarray  # [J] bool: some label on either model
    loc: np.ndarray  # [P] prior means (raw parameters: 0)
    sd: np.ndarray  # [P] prior sds (raw parameters: 1)
    group: np.ndarray  # [P] which spread tau the parameter belongs to (0 = none, 1.. = tau group)
    centered: np.ndarray  # [P] bool: a centred deviation (w = theta ~ N(0, tau)) rather than w = tau * theta
    tau_log_sd: np.ndarray  # [N_TAU] prior log-sd of each spread (learned, or nearly fixed with strong data)
    noisy: bool
    annotators: tuple[str, ...] = ("",)  # [A] ('' = the unnamed annotator)
    exact: np.ndarray = field(default_factory=lambda: np.zeros(1, bool))  # [A] settled answers: no noise

    @property
    def A(self) -> int:
        return len(self.annotators)

    @property
    def E(self) -> int:
        return self.S * self.U

    @property
    def P(self) -> int:
        return int(self.loc.shape[0])


def _signal_cells(t: PairTable) -> tuple[np.ndarray, np.ndarray]:
    keys = np.concatenate([t.a0, t.a1, t.known0[:, None], t.known1[:, None]], axis=1)
    if keys.shape[0] == 0:
        return np.zeros((0, keys.shape[1]), np.int64), np.zeros(0, np.int64)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    return uniq, inv.reshape(-1)


def design(t: PairTable) -> Design:
    S, G, lv = t.n_segments, t.signals, t.levels
    uniq, u_of_cell = _signal_cells(t)
    U = max(1, uniq.shape[0])
    if uniq.shape[0] == 0:
        uniq = np.concatenate([np.asarray(lv), np.asarray(lv), [-1, -1]])[None, :]
    lev = np.stack([uniq[:, :G], uniq[:, G : 2 * G]], axis=1)  # [U, 2, G]
    known = uniq[:, 2 * G : 2 * G + 2]
    n_su = np.zeros((S, U))
    np.add.at(n_su, (t.seg, u_of_cell), t.item_weight)  # items, not samples, inform P(u | s)

    loc: list[float] = []
    sd: list[float] = []
    group: list[int] = []
    centered: list[bool] = []
    labelled = (t.tot0 > 0) | (t.tot1 > 0)
    seg_labels = np.bincount(t.seg[labelled], weights=t.n[labelled], minlength=S)

    def block(count: int, grp: int, mean: float = 0.0, scale: float = 1.0, informed: float = 0.0) -> int:
        start = len(loc)
        loc.extend([mean] * count)
        sd.extend([scale] * count)
        group.extend([grp] * count)
        centered.extend([grp != GROUP_FIXED and informed >= CENTER_LABELS] * count)
        return start

    o_mu = block(3, GROUP_FIXED, 0.0, MU_SD)
    # one segment: no segment deviations (their spread would be unidentified, a funnel: 715 divergences in 320 fits)
    pooled = S > 1
    o_ra = len(loc)
    for s in range(S if pooled else 0):
        block(3, GROUP_A, informed=seg_labels[s])
    o_beta = np.zeros((2, G), np.int64)
    o_rb = np.zeros((2, G), np.int64)
    for m in range(2):
        for g, k in enumerate(lv):
            # coefficients of levels 1..k-1 and of "missing" (index k): ramp toward the top level
            means = [ORIENT * j / max(k - 1, 1) for j in range(1, k)] + [0.5 * ORIENT]
            o_beta[m, g] = len(loc)
            for mean in means:
                block(1, GROUP_FIXED, mean, BETA_SD)
    for m in range(2):
        for g, k in enumerate(lv):
            o_rb[m, g] = len(loc)
            tot = t.tot0 if m == 0 else t.tot1
            lev_g = (t.a0 if m == 0 else t.a1)[:, g]
            for s in range(S if pooled else 0):
                for level in range(1, k + 1):
                    here = (tot > 0) & (t.seg == s)
                    informed = min(t.n[here & (lev_g == level)].sum(), t.n[here & (lev_g == 0)].sum())
                    block(1, GROUP_B, informed=informed)
    tuples: list[np.ndarray] = []
    t_of_u = np.zeros((U, 2), np.int64)
    o_ri = 0
    if G > 1:
        for m in range(2):
            tu, inv = np.unique(lev[:, m, :], axis=0, return_inverse=True)
            t_of_u[:, m] = inv.reshape(-1) + sum(len(x) for x in tuples)
            tuples.append(tu)
        o_ri = block(sum(len(x) for x in tuples), GROUP_FIXED, 0.0, TAU_I)
    pairs, p_of_u = np.unique(lev[:, :, 0], axis=0, return_inverse=True)
    p_of_u = p_of_u.reshape(-1)
    o_rd = block(len(pairs) * 3, GROUP_FIXED, 0.0, TAU_D)

    ptr = [0]
    idx: list[int] = []
    allowed = np.ones((S * U, 4), bool)
    for s in range(S):
        for u in range(U):
            e = s * U + u
            for c in range(4):
                zs = (Z0[c], Z1[c])
                for m in range(2):
                    if known[u, m] >= 0 and zs[m] != known[u, m]:
                        allowed[e, c] = False
            for c in (1, 2, 3):
                zs = (Z0[c], Z1[c])
                row = [o_mu + c - 1] + ([o_ra + s * 3 + c - 1] if pooled else [])
                for m in range(2):
                    if not zs[m]:
                        continue
                    for g, k in enumerate(lv):
                        level = int(lev[u, m, g])
                        if level == 0:
                            continue
                        row.append(int(o_beta[m, g]) + level - 1)
                        if pooled:
                            row.append(int(o_rb[m, g]) + s * k + level - 1)
                    if G > 1:
                        row.append(o_ri + int(t_of_u[u, m]))
                row.append(o_rd + int(p_of_u[u]) * 3 + c - 1)
                idx.extend(row)
                ptr.append(len(idx))

    A = len(t.annotator_names)
    agree = np.zeros((t.cells, 2, 2, A))
    disagree = np.zeros((t.cells, 2, 2, A))
    for m in range(2):
        votes = t.votes(m)
        pos, tot = votes[..., 0], votes[..., 1]  # [J, A]
        agree[:, m, 1], agree[:, m, 0] = pos, tot - pos
        disagree[:, m, 1], disagree[:, m, 0] = tot - pos, pos
    return Design(
        S=S,
        U=U,
        levels=lv,
        lev=lev,
        known=known,
        n_su=n_su,
        n=t.n.astype(float),
        row_of_cell=(t.seg * U + u_of_cell).astype(np.int64),
        ptr=np.asarray(ptr, np.int64),
        idx=np.asarray(idx, np.int64),
        allowed=allowed,
        agree=agree,
        disagree=disagree,
        labelled=(t.tot0 > 0) | (t.tot1 > 0),
        loc=np.asarray(loc),
        sd=np.asarray(sd),
        group=np.asarray(group, np.int64),
        centered=np.asarray(centered, bool),
        tau_log_sd=np.full(N_TAU, TAU_LOG_SD if t.n[labelled].sum() < STRONG_LABELS else TAU_LOG_SD_STRONG),
        noisy=t.multi_annotator,
        annotators=t.annotator_names,
        exact=t.exact_mask,
    )


def label_likelihood(d: Design, noise: np.ndarray) -> np.ndarray:
    """P(labels of cell j | truth cell c) for every draw, [draws, J, 4] (noise: [draws, A], or [draws])."""
    e = np.asarray(noise, float)
    e = np.where(d.exact[None, :], 0.0, e if e.ndim == 2 else e[:, None])[:, None, None, None, :]  # [N,1,1,1,A]
    ag, dis = d.agree[None], d.disagree[None]  # [1, J, m, z, A]
    if d.noisy:
        with np.errstate(divide="ignore", invalid="ignore"):
            log_lab = np.where(ag > 0, ag * np.log1p(-e), 0.0) + np.where(
                dis > 0, dis * np.log(np.maximum(e, 1e-300)), 0.0
            )
        lab = np.exp(log_lab.sum(-1))
    else:
        lab = np.broadcast_to((dis.sum(-1) == 0).astype(float), (e.shape[0],) + dis.shape[1:-1])
    return lab[:, :, 0, :][..., Z0] * lab[:, :, 1, :][..., Z1]
