"""Simulated migrations with known truth, for checking the model (tests, benchmarks).

A scenario fixes, per segment, the incumbent's and the candidate's true pass
rates and their agreement, and the judge's confusion per model (possibly kinder
to the candidate). ``simulate`` draws items, signals and a random labelled
subset, and returns count tables plus the true deltas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from changeover.stats.model import (
    JUDGE_SPREAD,
    NOISE_A,
    NOISE_B,
    ORIENT,
    PHI_LOC_SD,
    PI_LOC_SD,
    SEGMENT_SPREAD,
)
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


def simulate(scenario: Scenario, rng: np.random.Generator) -> tuple[PairTable, np.ndarray, float]:
    """Draw one data set: (count table, true segment deltas, true overall delta)."""
    S, n = scenario.n_segments, scenario.items_per_segment
    pi = scenario.cell_probs()
    seg = np.repeat(np.arange(S), n)
    cells = np.concatenate([rng.choice(4, size=n, p=pi[s] / pi[s].sum()) for s in range(S)])
    z = np.stack([cells // 2, cells % 2], axis=1)
    a = np.empty_like(z)
    for m in range(2):
        p_pass = np.where(z[:, m] == 1, scenario.sensitivity[m], 1.0 - scenario.specificity[m])
        a[:, m] = (rng.random(z.shape[0]) < p_pass).astype(int)
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


# The judge passes the candidate's bad answers (a judge kinder to the candidate hides a regression).
LENIENT = {"sensitivity": (0.85, 0.95), "specificity": (0.85, 0.60)}

# The six migrations the model is checked on (tests/core/test_model.py, benchmarks/).
STANDARD_SCENARIOS = [
    Scenario("equal", [0.80, 0.70, 0.85], [0.80, 0.70, 0.85]),
    Scenario("better", [0.75, 0.70, 0.80], [0.82, 0.78, 0.86]),
    Scenario("worse", [0.80, 0.75, 0.85], [0.73, 0.68, 0.78]),
    Scenario("worse, judge lenient on candidate", [0.80, 0.75, 0.85], [0.73, 0.68, 0.78], **LENIENT),
    Scenario("one segment worse", [0.80, 0.75, 0.85], [0.81, 0.66, 0.86]),
    Scenario("equal, judge lenient on candidate", [0.80, 0.75, 0.85], [0.80, 0.75, 0.85], **LENIENT),
]


@dataclass
class PriorDraw:
    pi: np.ndarray  # [S, 4]
    phi: np.ndarray  # [2, 2, K]
    noise: float


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def draw_prior(S: int, K: int, rng: np.random.Generator, noisy: bool = False) -> PriorDraw:
    """One draw of all parameters from the model's prior (for simulation-based calibration)."""
    m = rng.normal(0.0, PI_LOC_SD, 4)
    pi = _softmax(m + SEGMENT_SPREAD * rng.standard_normal((S, 4)))
    ramp = np.linspace(-ORIENT, ORIENT, K)
    phi0 = np.stack([-ramp, ramp]) + rng.normal(0.0, PHI_LOC_SD, (2, K))
    phi = _softmax(phi0[None] + JUDGE_SPREAD * rng.standard_normal((2, 2, K)))
    noise = float(rng.beta(NOISE_A, NOISE_B)) if noisy else 0.0
    return PriorDraw(pi, phi, noise)


def simulate_from(
    draw: PriorDraw, items_per_segment: int, label_share: float, rng: np.random.Generator, annotators: int = 1
) -> PairTable:
    """Data drawn from given parameters: every item scored, a share labelled by ``annotators``."""
    S, K = draw.pi.shape[0], draw.phi.shape[-1]
    seg = np.repeat(np.arange(S), items_per_segment)
    cells = np.concatenate([rng.choice(4, size=items_per_segment, p=draw.pi[s] / draw.pi[s].sum()) for s in range(S)])
    z = np.stack([cells // 2, cells % 2], axis=1)
    a = np.empty_like(z)
    pos = np.zeros_like(z)
    tot = np.zeros_like(z)
    for m in range(2):
        probs = draw.phi[m][z[:, m]]
        a[:, m] = (rng.random((len(z), 1)) > np.cumsum(probs, axis=1)).sum(axis=1).clip(0, K - 1)
        labelled = rng.random(len(z)) < label_share
        tot[labelled, m] = annotators
        flips = rng.random((len(z), annotators)) < draw.noise
        votes = np.where(flips, 1 - z[:, m : m + 1], z[:, m : m + 1]).sum(axis=1)
        pos[labelled, m] = votes[labelled]
    return build_table(
        [f"s{i}" for i in range(S)], seg, K, a[:, 0], a[:, 1], pos[:, 0], tot[:, 0], pos[:, 1], tot[:, 1]
    )
