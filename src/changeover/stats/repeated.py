"""Simulated migrations with repeated samples per item (``evaluate --samples k``), for tests and benchmarks.

Each item has its own pass probability per model (items vary: a logit spread
of ``SPREAD`` around the segment's rate; the two models' item effects
correlate), each of its k answers passes with that probability, the judge
scores every answer, and humans label the first answer of a random subset. The
estimand is the population pass rate (the mean of the items' probabilities),
the rate a user's traffic sees. ``run_simulation`` fits three ways of using the
samples and returns each one's coverage and width of the 95% delta intervals.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from changeover.stats import decision as dec
from changeover.stats.model import FitSettings, PairFit, fit_pairs
from changeover.stats.tables import PairTable, build_table

FAST = FitSettings(warmup=300, draws=250, steps=16)
CONF = 0.95
SPREAD = 1.5  # logit sd of the items' pass probabilities around their segment's
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(60)


def _location(rate: float) -> float:
    """The logit location whose items' mean pass probability is ``rate``."""

    def mean(mu: float) -> float:
        return float(WEIGHTS @ (1 / (1 + np.exp(-(mu + SPREAD * NODES)))) / WEIGHTS.sum()) - rate

    return float(brentq(mean, -15, 15))


def simulate_samples(
    rng: np.random.Generator,
    incumbent: list[float],
    candidate: list[float],
    k: int,
    items: int = 400,
    labels: int = 40,
    sens: float = 0.85,
    spec: float = 0.8,
    rho: float = 0.6,
) -> tuple[PairTable, PairTable, PairTable]:
    """(all k samples, each item weighing one; the first sample only; all samples counted as items)."""
    S = len(incumbent)
    seg = np.repeat(np.arange(S), items)
    e0 = rng.standard_normal(S * items)
    e1 = rho * e0 + np.sqrt(1 - rho**2) * rng.standard_normal(S * items)
    mu0 = np.array([_location(r) for r in incumbent])[seg]
    mu1 = np.array([_location(r) for r in candidate])[seg]
    p = np.stack([1 / (1 + np.exp(-(mu0 + SPREAD * e0))), 1 / (1 + np.exp(-(mu1 + SPREAD * e1)))])  # [2, N]
    z = rng.random((2, S * items, k)) < p[:, :, None]  # [2, N, k] truth of every answer
    judge_pass = np.where(z, rng.random(z.shape) < sens, rng.random(z.shape) >= spec)
    labelled = np.zeros((2, S * items), bool)
    for m in range(2):
        for s in range(S):
            labelled[m, rng.choice(np.flatnonzero(seg == s), labels, replace=False)] = True
    rows = np.repeat(np.arange(S * items), k)
    first = np.tile(np.arange(k) == 0, S * items)
    sig = judge_pass.reshape(2, -1).astype(int)
    lab = labelled[:, rows] & first[None, :]
    pos = np.where(lab, z.reshape(2, -1), 0)
    tot = lab.astype(int)
    names = [f"s{i}" for i in range(S)]

    def table(keep: np.ndarray, weight: np.ndarray | None) -> PairTable:
        return build_table(
            names, seg[rows][keep], 2, sig[0][keep], sig[1][keep], pos[0][keep], tot[0][keep], pos[1][keep],
            tot[1][keep], weight=weight,
        )  # fmt: skip

    every = np.ones(rows.size, bool)
    return table(every, np.full(rows.size, 1.0 / k)), table(first, None), table(every, None)


def _coverage_and_width(fits: list[PairFit], truths: list[np.ndarray]) -> tuple[float, float]:
    hits, widths = [], []
    for fit, truth in zip(fits, truths, strict=True):
        S = truth.size
        draws = [PairFit.flat(fit.overall(fit.delta, np.ones(S)))] + [PairFit.flat(fit.delta[..., s]) for s in range(S)]
        for x, t in zip(draws, [truth.mean(), *truth], strict=True):
            iv = dec.interval(x, CONF)
            hits.append(iv.lower <= t <= iv.upper)
            widths.append(iv.upper - iv.lower)
    return float(np.mean(hits)), float(np.mean(widths))


SCENARIOS = [([0.8, 0.7], [0.78, 0.72]), ([0.9, 0.6], [0.85, 0.62]), ([0.7, 0.75], [0.7, 0.75])]


WAYS = ("weighted", "first", "as_items")


def run_simulation(
    reps: int, k: int = 3, seed: int = 0, ways: tuple[str, ...] = WAYS, settings: FitSettings = FAST
) -> dict[str, tuple[float, float]]:
    """Coverage and mean width of the 95% intervals of delta (overall and per segment) per way of using samples:
    ``weighted`` (every answer, each item weighing one: what assess does), ``first`` (the first answer only),
    ``as_items`` (every answer counted as an item of its own)."""
    tables: dict[str, list[PairTable]] = {w: [] for w in ways}
    truths = []
    for r in range(reps):
        inc, cand = SCENARIOS[r % len(SCENARIOS)]
        rng = np.random.default_rng([seed, r])
        for key, t in zip(WAYS, simulate_samples(rng, inc, cand, k), strict=True):
            if key in tables:
                tables[key].append(t)
        truths.append(np.subtract(cand, inc))
    run_settings = FitSettings(**{**settings.__dict__, "seed": seed})
    return {key: _coverage_and_width(fit_pairs(ts, run_settings), truths) for key, ts in tables.items()}
