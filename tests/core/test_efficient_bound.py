"""The efficient bound the benchmarks read width targets against (benchmarks/_common.efficient_ratios), checked
by simulation: the stratified-by-signal estimator's spread over many label draws matches the formula, as do
human-only's and PPI++'s at its best lambda, and the two limits (a useless signal, a perfect one) come out right."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _common as bench  # noqa: E402  (the benchmark helper under test)

N, n = 20_000, 400
SHARE = n / N
MEANS = np.array([-0.8, 0.0, 0.7])  # E[Y | cell]: Y in {-1, 0, 1} as a paired difference is
CELL_P = np.array([0.2, 0.5, 0.3])


def _population(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cells = rng.choice(3, N, p=CELL_P)
    m = MEANS[cells]
    # Y | cell: P(+1) and P(-1) chosen so E[Y | cell] = m, with some mass at 0
    p_pos = np.maximum(m, 0) + 0.1
    p_neg = np.maximum(-m, 0) + 0.1
    u = rng.random(N)
    y = np.where(u < p_pos, 1.0, np.where(u < p_pos + p_neg, -1.0, 0.0))
    yhat = MEANS[cells] + 0.3 * rng.standard_normal(N)  # a noisy score carrying the cell
    return y, yhat, cells


def test_bound_matches_the_spread_of_the_stratified_estimator():
    rng = np.random.default_rng(7)
    truth = float(CELL_P @ MEANS)
    y, yhat, cells = _population(rng)
    r_human, r_ppi = bench.efficient_ratios(y, yhat, cells, SHARE)
    strat, human, ppi = [], [], []
    lam = float(np.cov(y, yhat, bias=True)[0, 1] / np.var(yhat))  # PPI++'s best lambda (unlabelled: the N - n others)
    for _ in range(600):
        y, yhat, cells = _population(rng)
        lab = rng.choice(N, n, replace=False)
        share_k = np.bincount(cells, minlength=3) / N
        ybar_k = np.array([y[lab][cells[lab] == k].mean() for k in range(3)])
        strat.append(share_k @ ybar_k - truth)
        human.append(y[lab].mean() - truth)
        rest = np.ones(N, bool)
        rest[lab] = False
        ppi.append(y[lab].mean() - lam * (yhat[lab].mean() - yhat[rest].mean()) * (1 - SHARE) - truth)
    sd_s, sd_h, sd_p = (float(np.std(v)) for v in (strat, human, ppi))
    assert abs(sd_s / sd_h - r_human) < 0.08, (sd_s / sd_h, r_human)
    assert abs(sd_s / sd_p - r_ppi) < 0.08, (sd_s / sd_p, r_ppi)
    assert r_human < 0.8  # the signal is informative: the bound is well below human-only


def test_limits_useless_and_perfect_signal():
    rng = np.random.default_rng(3)
    y = rng.choice([-1.0, 0.0, 1.0], N, p=[0.2, 0.5, 0.3])
    r_h, r_p = bench.efficient_ratios(y, rng.random(N), rng.integers(0, 2, N), SHARE)
    assert abs(r_h - 1) < 0.02 and abs(r_p - 1) < 0.02  # a signal independent of Y buys nothing
    r_h, r_p = bench.efficient_ratios(y, y, y, SHARE)  # the cell is the truth: only the unlabelled spread is left
    assert abs(r_h - np.sqrt(SHARE)) < 0.01
    assert abs(r_p - 1) < 1e-9  # PPI++ is efficient when the score is the truth itself
