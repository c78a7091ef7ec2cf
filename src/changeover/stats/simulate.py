"""Simulated migrations with known truth, for checking the model (tests, benchmarks).

A scenario fixes, per segment, the incumbent's and the candidate's true pass
rates and their agreement, and the judge's confusion per model (possibly kinder
to the candidate). ``simulate`` draws items, signals and a random labelled
subset, and returns count tables plus the true deltas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from changeover.stats.design import N_TAU, TAU_MEDIAN, U_MASS, Design, design
from changeover.stats.likelihood import eta_rows
from changeover.stats.model import NOISE_A, NOISE_B, PairFit
from changeover.stats.tables import PairTable, build_table


@dataclass
class Scenario:
    """A migration with known truth. Rates per segment; judge sens/spec per model."""

    name: str
    incumbent: list[float]
    candidate: list[float]
    shares: list[float] | None = None
    correlation: float = 0.5  # how much the two models' verdicts agree beyond chance
    sensitivity: tuple[float, float] = (0.85, 0.85)  # P(judge pass | acceptable), incumbent / candidate
    specificity: tuple[float, float] = (0.85, 0.85)  # P(judge fail | not acceptable)
    items_per_segment: int = 400
    labels_per_segment: int = 40  # random responses labelled, per model
    segment_names: list[str] = field(default_factory=list)
    levels: int = 2  # K-level (ordinal) judge when > 2: see ``confusion``
    label_share: float | None = None  # for ``simulate_counts``: each response labelled with this probability

    def confusion(self, model: int) -> np.ndarray:
        """P(level k | z) for one model, [2, K]: sens/spec split the "pass" (upper) and "fail" (lower) halves.

        Within a half, acceptable answers lean to the top levels and unacceptable
        ones to the bottom (weights 1, 2, ...).
        """
        K = self.levels
        top = np.arange(K) >= (K + 1) // 2
        up = np.where(top, np.arange(K) + 1.0, 0.0)
        down = np.where(~top, K - np.arange(K) + 0.0, 0.0)
        sens, spec = self.sensitivity[model], self.specificity[model]
        good = sens * up / up.sum() + (1 - sens) * (down[::-1] * ~top) / max((down[::-1] * ~top).sum(), 1e-12)
        bad = spec * down / down.sum() + (1 - spec) * (up[::-1] * top) / max((up[::-1] * top).sum(), 1e-12)
        if K == 2:
            good, bad = np.array([1 - sens, sens]), np.array([spec, 1 - spec])
        return np.stack([bad, good])

    @property
    def n_segments(self) -> int:
        return len(self.incumbent)

    def true_delta(self) -> tuple[np.ndarray, float]:
        d = np.asarray(self.candidate) - np.asarray(self.incumbent)
        w = np.asarray(self.shares if self.shares else [1.0] * self.n_segments, float)
        return d, float(d @ (w / w.sum()))

    def cell_probs(self) -> np.ndarray:
        """pi[s, c] with the given margins and a positive dependence between models."""
        out = []
        for p0, p1 in zip(self.incumbent, self.candidate, strict=True):
            lo, hi = max(0.0, p0 + p1 - 1.0), min(p0, p1)
            p11 = p0 * p1 + self.correlation * (hi - p0 * p1)
            p11 = min(max(p11, lo), hi)
            out.append([1 - p0 - p1 + p11, p1 - p11, p0 - p11, p11])
        return np.clip(np.asarray(out), 0.0, 1.0)


def _items(scenario: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items drawn from a scenario: (segment [N], truth [N, 2], the judge's binary verdict [N, 2])."""
    S, n = scenario.n_segments, scenario.items_per_segment
    pi = scenario.cell_probs()
    seg = np.repeat(np.arange(S), n)
    cells = np.concatenate([rng.choice(4, size=n, p=pi[s] / pi[s].sum()) for s in range(S)])
    z = np.stack([cells // 2, cells % 2], axis=1)
    a = np.empty_like(z)
    for m in range(2):
        p_pass = np.where(z[:, m] == 1, scenario.sensitivity[m], 1.0 - scenario.specificity[m])
        a[:, m] = (rng.random(z.shape[0]) < p_pass).astype(int)
    return seg, z, a


def simulate(scenario: Scenario, rng: np.random.Generator) -> tuple[PairTable, np.ndarray, float]:
    """Draw one data set: (count table, true segment deltas, true overall delta)."""
    S = scenario.n_segments
    seg, z, a = _items(scenario, rng)
    pos = np.zeros_like(z)
    tot = np.zeros_like(z)
    for m in range(2):
        for s in range(S):
            idx = rng.choice(np.flatnonzero(seg == s), size=scenario.labels_per_segment, replace=False)
            tot[idx, m] = 1
            pos[idx, m] = z[idx, m]
    names = scenario.segment_names or [f"s{i}" for i in range(S)]
    table = build_table(names, seg, 2, a[:, 0], a[:, 1], pos[:, 0], tot[:, 0], pos[:, 1], tot[:, 1])
    d_seg, d_all = scenario.true_delta()
    return table, d_seg, d_all


def simulate_counts(scenario: Scenario, rng: np.random.Generator) -> tuple[PairTable, np.ndarray, float]:
    """Like ``simulate`` but drawn directly as counts (multinomial per segment), so 10^6 items cost as 10^3.

    Each response is labelled independently with probability
    ``scenario.label_share`` (or labels_per_segment / items_per_segment). The
    table's ``cell_of_item`` is empty: there are no individual items.
    """
    S, n, K = scenario.n_segments, scenario.items_per_segment, scenario.levels
    share = scenario.label_share if scenario.label_share is not None else scenario.labels_per_segment / n
    pi = scenario.cell_probs()
    conf = [scenario.confusion(m) for m in range(2)]
    rows: dict[tuple[int, ...], int] = {}
    for s in range(S):
        # category (c, a0, a1, l0, l1)
        p = np.zeros((4, K, K, 2, 2))
        for c in range(4):
            z0, z1 = c // 2, c % 2
            pa = np.outer(conf[0][z0], conf[1][z1])
            pl = np.outer([1 - share, share], [1 - share, share])
            p[c] = pi[s, c] * pa[:, :, None, None] * pl[None, None]
        counts = rng.multinomial(n, (p / p.sum()).ravel()).reshape(p.shape)
        for c, a0, a1, l0, l1 in zip(*np.nonzero(counts), strict=True):
            key = (s, a0, a1, (c // 2) * l0, l0, (c % 2) * l1, l1)
            rows[key] = rows.get(key, 0) + int(counts[c, a0, a1, l0, l1])
    keys = np.array(sorted(rows), dtype=np.int64).reshape(-1, 7)
    cnt = np.array([rows[tuple(k)] for k in keys.tolist()], dtype=np.int64)
    minus = np.full(len(keys), -1, np.int64)
    names = scenario.segment_names or [f"s{i}" for i in range(S)]
    table = PairTable(
        tuple(names),
        (K,),
        keys[:, 0],
        keys[:, 1:2],
        keys[:, 2:3],
        minus,
        minus.copy(),
        keys[:, 3],
        keys[:, 4],
        keys[:, 5],
        keys[:, 6],
        cnt,
        np.zeros(0, np.int64),
    )
    d_seg, d_all = scenario.true_delta()
    return table, d_seg, d_all


def simulate_judges(
    pi: np.ndarray,
    confusion: np.ndarray,
    items_per_segment: int,
    labels_per_segment: int,
    rng: np.random.Generator,
    shared_error: float = 0.0,
    signals: tuple[int, ...] | None = None,
) -> tuple[PairTable, np.ndarray]:
    """Items with several signals, a judge that may differ per segment and err on both answers together.

    ``pi`` [S, 4] truth cells; ``confusion`` [S, 2 models, G signals, 2 z, K]
    P(level | z). With probability ``shared_error`` an item's signal-0 levels
    on the two answers come from one uniform draw, oriented so that both are
    wrong together (correlated judge errors); otherwise independently.
    ``labels_per_segment`` random items per segment get a label on both answers.
    ``signals`` picks which signals go into the table (default all). Returns
    the table and the true segment deltas.
    """
    S, _, G, _, K = confusion.shape
    seg = np.repeat(np.arange(S), items_per_segment)
    n = seg.size
    cells = np.concatenate([rng.choice(4, size=items_per_segment, p=pi[s] / pi[s].sum()) for s in range(S)])
    z = np.stack([cells // 2, cells % 2], axis=1)
    a = np.zeros((n, 2, G), np.int64)
    shared = rng.random(n) < shared_error
    u_common = rng.random(n)
    for m in range(2):
        for g in range(G):
            cdf = np.cumsum(confusion[seg, m, g, z[:, m]], axis=1)  # [n, K]
            u = rng.random(n)
            if g == 0:
                # oriented so that a small u is an error for either truth: levels ascend with z = 1, descend with z = 0
                u = np.where(shared, np.where(z[:, m] == 1, u_common, 1.0 - u_common), u)
            a[:, m, g] = (u[:, None] > cdf).sum(1).clip(0, K - 1)
    lab = np.zeros(n, np.int64)
    for s in range(S):
        lab[rng.choice(np.flatnonzero(seg == s), size=labels_per_segment, replace=False)] = 1
    pick = list(range(G)) if signals is None else list(signals)
    table = build_table(
        [f"s{i}" for i in range(S)],
        seg,
        [K] * len(pick),
        a[:, 0, pick],
        a[:, 1, pick],
        z[:, 0] * lab,
        lab,
        z[:, 1] * lab,
        lab,
    )
    return table, pi[:, 1] - pi[:, 2]


def production_scenario(
    rng: np.random.Generator, items_per_segment: int, label_share: float, levels: int = 2, segments: int = 6
) -> Scenario:
    """The production case of issue 10: 6 segments, a judge with sensitivity 0.85-0.95 and specificity
    0.75-0.9, half the time 0.3 lower on the candidate; pass rates 0.7-0.9, the candidate within +-0.05."""
    inc = rng.uniform(0.7, 0.9, segments)
    cand = np.clip(inc + rng.uniform(-0.05, 0.05, segments), 0.05, 0.95)
    sens = tuple(rng.uniform(0.85, 0.95, 2))
    spec = rng.uniform(0.75, 0.9, 2)
    if rng.random() < 0.5:
        spec[1] -= 0.3
    return Scenario(
        f"production {segments}x{items_per_segment:,}, {label_share:.2%} labelled",
        list(inc),
        list(cand),
        sensitivity=sens,
        specificity=tuple(spec),
        items_per_segment=items_per_segment,
        levels=levels,
        label_share=label_share,
    )


# The judge passes the candidate's bad answers (a judge kinder to the candidate hides a regression).
LENIENT_SENSITIVITY, LENIENT_SPECIFICITY = (0.85, 0.95), (0.85, 0.60)
LENIENT = {"sensitivity": LENIENT_SENSITIVITY, "specificity": LENIENT_SPECIFICITY}

# The six migrations the model is checked on (tests/core/test_model.py, benchmarks/).
STANDARD_SCENARIOS = [
    Scenario("equal", [0.80, 0.70, 0.85], [0.80, 0.70, 0.85]),
    Scenario("better", [0.75, 0.70, 0.80], [0.82, 0.78, 0.86]),
    Scenario("worse", [0.80, 0.75, 0.85], [0.73, 0.68, 0.78]),
    Scenario(
        "worse, judge lenient on candidate",
        [0.80, 0.75, 0.85],
        [0.73, 0.68, 0.78],
        sensitivity=LENIENT_SENSITIVITY,
        specificity=LENIENT_SPECIFICITY,
    ),
    Scenario("one segment worse", [0.80, 0.75, 0.85], [0.81, 0.66, 0.86]),
    Scenario(
        "equal, judge lenient on candidate",
        [0.80, 0.75, 0.85],
        [0.80, 0.75, 0.85],
        sensitivity=LENIENT_SENSITIVITY,
        specificity=LENIENT_SPECIFICITY,
    ),
]


@dataclass
class PriorDraw:
    """All parameters of the model drawn from its prior, for S segments and one K-level signal."""

    design: Design
    pu: np.ndarray  # [S, U] P(signal cell | segment)
    cond: np.ndarray  # [S * U, 4] P(truth cell | segment, signal cell)
    noise: float
    fit: PairFit  # the draw as a one-draw "posterior", for its derived quantities

    @property
    def pi(self) -> np.ndarray:
        """[S, 4] truth cells per segment."""
        return self.fit.pi[0, 0]

    @property
    def phi(self) -> np.ndarray:
        """[2, 2, K] P(signal level | truth) per model (segments weighted equally)."""
        return self.fit.confusion(0)[0, 0]


def draw_prior(S: int, K: int, rng: np.random.Generator, noisy: bool = False) -> PriorDraw:
    """One draw of all parameters from the model's prior (for simulation-based calibration).

    The signal cells are the full K x K grid of the two answers' levels (no
    missing signals, no known truth).
    """
    grid = np.array([(k0, k1) for k0 in range(K) for k1 in range(K)])
    seg = np.repeat(np.arange(S), len(grid))
    a = np.tile(grid, (S, 1))
    zeros = np.zeros(len(seg), int)
    template = build_table([f"s{i}" for i in range(S)], seg, K, a[:, 0], a[:, 1], zeros, zeros, zeros, zeros)
    d = design(template)
    theta = d.loc + d.sd * rng.standard_normal(d.P)
    tau = TAU_MEDIAN * np.exp(d.tau_log_sd * rng.standard_normal(N_TAU))
    w = theta * np.concatenate([[1.0], tau])[d.group]
    cond = eta_rows(w[None], d.ptr, d.idx, d.allowed)[0]
    pu = rng.dirichlet(np.full(d.U, U_MASS / d.U), size=S)
    noise = float(rng.beta(NOISE_A, NOISE_B)) if noisy else 0.0
    fit = PairFit(
        template,
        d,
        pu[None, None],
        cond[None, None],
        np.full((1, 1, 1), noise),
        tau[None, None] * np.ones((1, 1, N_TAU)),
        1.0,
        0,
    )
    return PriorDraw(d, pu, cond, noise, fit)


def simulate_from(
    draw: PriorDraw, items_per_segment: int, label_share: float, rng: np.random.Generator, annotators: int = 1
) -> PairTable:
    """Data drawn from given parameters: every item scored, a share labelled by ``annotators``."""
    d = draw.design
    S, U, K = d.S, d.U, d.levels[0]
    seg = np.repeat(np.arange(S), items_per_segment)
    u = np.concatenate([rng.choice(U, size=items_per_segment, p=draw.pu[s]) for s in range(S)])
    probs = draw.cond[seg * U + u]
    cells = (rng.random((len(u), 1)) > np.cumsum(probs, axis=1)).sum(axis=1).clip(0, 3)
    z = np.stack([cells // 2, cells % 2], axis=1)
    a = d.lev[u, :, 0]
    pos = np.zeros_like(z)
    tot = np.zeros_like(z)
    for m in range(2):
        labelled = rng.random(len(z)) < label_share
        tot[labelled, m] = annotators
        flips = rng.random((len(z), annotators)) < draw.noise
        votes = np.where(flips, 1 - z[:, m : m + 1], z[:, m : m + 1]).sum(axis=1)
        pos[labelled, m] = votes[labelled]
    return build_table(
        [f"s{i}" for i in range(S)], seg, K, a[:, 0], a[:, 1], pos[:, 0], tot[:, 0], pos[:, 1], tot[:, 1]
    )


# --------------------------------------------------------------------------- annotators of differing quality


@dataclass
class Annotators:
    """Who labels a simulated migration, and how well.

    ``noise[a]``: P(annotator a flips a verdict). ``load[s][m]``: the share of
    segment s's labels on model m's answers each annotator does (rows: one
    weight per annotator; default even). ``double``: the share of labelled
    responses a second, different annotator judges too. ``gold``: settled
    answers per annotator (random responses whose answer is known, each judged
    once by that annotator; the answer counts as an exact verdict).
    """

    noise: list[float]
    load: list[list[list[float]]] | None = None
    double: float = 0.2
    gold: int = 15

    def weights(self, s: int, m: int) -> np.ndarray:
        w = np.ones(len(self.noise)) if self.load is None else np.asarray(self.load[s][m], float)
        return w / w.sum()


# The case: one of four annotators flips 35% of verdicts (the others 3%), and does half of the
# candidate's first labels and none of the incumbent's (annotators who specialise: a queue, a shift, a region).
BAD_ANNOTATOR = Annotators(noise=[0.35, 0.03, 0.03, 0.03], load=[[[0, 1, 1, 1], [4, 1, 1, 1]]] * 3)


def simulate_annotators(
    scenario: Scenario, annotators: Annotators, rng: np.random.Generator
) -> tuple[PairTable, PairTable, np.ndarray, float]:
    """One data set labelled by named annotators of differing noise, and the same data with one shared rate.

    Returns (table keeping who said what, the same verdicts as the unnamed
    annotator's, true segment deltas, true overall delta). Gold answers are
    the exact annotator 'gold' in both tables.
    """
    S, A = scenario.n_segments, len(annotators.noise)
    seg, z, a = _items(scenario, rng)
    votes = np.zeros((2, seg.size, A + 1, 2), np.int64)  # the last annotator: the exact gold answers
    noise = np.asarray(annotators.noise, float)

    def judge(m: int, i: np.ndarray, who: np.ndarray) -> None:
        said = np.where(rng.random(i.size) < noise[who], 1 - z[i, m], z[i, m])
        np.add.at(votes[m, :, :, 0], (i, who), said)
        np.add.at(votes[m, :, :, 1], (i, who), 1)

    for m in range(2):
        for s in range(S):
            i = rng.choice(np.flatnonzero(seg == s), size=scenario.labels_per_segment, replace=False)
            first = rng.choice(A, size=i.size, p=annotators.weights(s, m))
            judge(m, i, first)
            again = rng.random(i.size) < annotators.double
            second = (first[again] + rng.integers(1, A, again.sum())) % A
            judge(m, i[again], second)
    unlabelled = np.flatnonzero((votes[..., 1].sum(-1) == 0).all(0))
    gold = rng.choice(unlabelled, size=(A, annotators.gold), replace=False)
    for who in range(A):
        on = rng.integers(0, 2, annotators.gold)  # which model's answer each gold response is
        for mm in range(2):
            i = gold[who, on == mm]
            judge(mm, i, np.full(i.size, who))
            votes[mm, i, A] = np.stack([z[i, mm], np.ones(i.size, np.int64)], 1)
    names = [f"a{k}" for k in range(A)] + ["gold"]
    exact = [False] * A + [True]
    shared = np.concatenate([votes[..., :A, :].sum(2, keepdims=True), votes[..., A:, :]], axis=2)
    seg_names = scenario.segment_names or [f"s{i}" for i in range(S)]
    tables = [
        build_table(
            seg_names,
            seg,
            2,
            a[:, 0],
            a[:, 1],
            v[0, :, :, 0].sum(1),
            v[0, :, :, 1].sum(1),
            v[1, :, :, 0].sum(1),
            v[1, :, :, 1].sum(1),
            annotators=who,
            votes0=v[0],
            votes1=v[1],
            exact=ex,
        )
        for v, who, ex in ((votes, names, exact), (shared, ["", "gold"], [False, True]))
    ]
    d_seg, d_all = scenario.true_delta()
    return tables[0], tables[1], d_seg, d_all
