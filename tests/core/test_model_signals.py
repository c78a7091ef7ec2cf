"""What the reverse form of the model adds, checked: known truth, several signals, a judge that differs per
segment, correlated judge errors, and the XSTest segment coverage that forced them (a seeded subset of
benchmarks/bench_calibration.py's full run)."""

import dataclasses
import itertools
import sys
from pathlib import Path

import numpy as np

from changeover.stats.model import FitSettings, PairFit, fit_pairs
from changeover.stats.simulate import simulate_judges
from changeover.stats.tables import build_table

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _common as bench  # noqa: E402  (the XSTest loader shared with the benchmark)

FAST = FitSettings(warmup=300, draws=250, steps=16)  # statistical properties; the defaults: test_model_scale.py


def _interval(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.quantile(PairFit.flat(x), [0.025, 0.975], axis=0)


def _binary_confusion(sens: float, spec: float) -> np.ndarray:
    return np.array([[spec, 1 - spec], [1 - sens, sens]])


def test_known_truth_needs_no_label_and_counts_as_failure():
    """A candidate whose calls all failed: its truth is known (unacceptable), the delta is -incumbent rate."""
    rng = np.random.default_rng(1)
    n = 2000
    z0 = (rng.random(n) < 0.8).astype(int)
    a0 = np.where(rng.random(n) < 0.85, z0, 1 - z0)
    lab = (rng.random(n) < 0.05).astype(int)
    seg = rng.integers(0, 2, n)
    known1 = np.zeros(n, int)  # every candidate response is an error
    t = build_table(["a", "b"], seg, 2, a0, np.full(n, -1), z0 * lab, lab, np.zeros(n), np.zeros(n), known1=known1)
    assert t.known(1) == n and t.labelled(1) == 0
    (fit,) = fit_pairs([t], FitSettings(seed=3))
    assert np.all(PairFit.flat(fit.candidate_rate) == 0.0)
    lo, hi = _interval(fit.overall(fit.delta, np.ones(2)))
    assert hi < -0.7 and lo > -0.9
    # no label of the candidate's responses can tell anything
    assert np.all(fit.p_acceptable(1) == 0.0)


def test_some_errors_are_failures_and_the_rest_is_measured():
    rng = np.random.default_rng(2)
    pi = np.array([[0.1, 0.1, 0.1, 0.7]] * 2)
    conf = np.broadcast_to(_binary_confusion(0.9, 0.8)[None, None, None], (2, 2, 1, 2, 2)).copy()
    tables, truths = [], []
    for _ in range(6):
        t, d = simulate_judges(pi, conf, 1500, 60, rng)
        # 10% of the candidate's responses are errors: known unacceptable
        known1 = np.where(rng.random(t.cells) < 0.1, 0, -1)
        t2 = build_table(
            t.segments,
            np.repeat(t.seg, t.n),
            t.levels,
            np.repeat(t.a0, t.n, axis=0),
            np.repeat(t.a1, t.n, axis=0),
            np.repeat(t.pos0, t.n),
            np.repeat(t.tot0, t.n),
            np.repeat(t.pos1, t.n),
            np.repeat(t.tot1, t.n),
            known1=np.repeat(known1, t.n),
        )
        share_err = np.array([t2.n[(t2.seg == s) & (t2.known1 == 0)].sum() / t2.n[t2.seg == s].sum() for s in (0, 1)])
        tables.append(t2)
        truths.append((1 - share_err) * pi[:, 1] + (1 - share_err) * pi[:, 3] - (pi[:, 2] + pi[:, 3]))
    hits = []
    for fit, truth in zip(fit_pairs(tables, dataclasses.replace(FAST, seed=4)), truths, strict=True):
        lo, hi = _interval(fit.delta)
        hits += list((lo <= truth) & (truth <= hi))
    assert np.mean(hits) >= 0.8


def test_several_signals_narrow_the_interval():
    """Two conditionally independent signals of accuracy 0.8: the delta's interval is narrower with both."""
    rng = np.random.default_rng(5)
    pi = np.array([[0.15, 0.1, 0.15, 0.6]] * 2)
    conf = np.broadcast_to(_binary_confusion(0.8, 0.8)[None, None, None], (2, 2, 2, 2, 2)).copy()
    widths: dict[int, list[float]] = {1: [], 2: []}
    hits = []
    tables, keys = [], []
    for _ in range(6):
        state = rng.bit_generator.state
        for g, sig in ((1, (0,)), (2, (0, 1))):
            rng.bit_generator.state = state
            t, d = simulate_judges(pi, conf, 2000, 50, rng, signals=sig)
            tables.append(t)
            keys.append((g, d))
    for fit, (g, d) in zip(fit_pairs(tables, dataclasses.replace(FAST, seed=5)), keys, strict=True):
        lo, hi = _interval(fit.overall(fit.delta, np.ones(2)))
        widths[g].append(hi - lo)
        if g == 2:
            hits.append(lo <= d.mean() <= hi)
            assert fit.confusion(1).shape == (4, 250, 2, 2, 2)
    print({g: round(float(np.mean(w)), 4) for g, w in widths.items()})
    assert np.mean(widths[2]) < 0.95 * np.mean(widths[1])
    assert np.mean(hits) >= 5 / 6


def test_the_judge_may_differ_per_segment():
    """The judge's relation to the truth reverses in segment 1 (as on XSTest's unsafe prompts)."""
    rng = np.random.default_rng(7)
    pi = np.array([[0.2, 0.15, 0.1, 0.55], [0.3, 0.3, 0.1, 0.3]])
    conf = np.zeros((2, 2, 1, 2, 2))
    conf[0, :, 0] = _binary_confusion(0.9, 0.85)
    conf[1, :, 0] = _binary_confusion(0.35, 0.4)  # worse than chance: levels mean the opposite here
    hits, sens_seg = [], []
    data = [simulate_judges(pi, conf, 1500, 60, rng) for _ in range(6)]
    fits = fit_pairs([t for t, _ in data], dataclasses.replace(FAST, seed=6))
    for fit, (_, d) in zip(fits, data, strict=True):
        lo, hi = _interval(fit.delta)
        hits += list((lo <= d) & (d <= hi))
        cs = PairFit.flat(fit.confusion_by_segment(0)).mean(0)  # [S, m, z, K]
        sens_seg.append(cs[:, 1, 1, 1])
    print("coverage", np.mean(hits), "candidate sensitivity per segment", np.mean(sens_seg, 0).round(2))
    assert np.mean(hits) >= 10 / 12
    s0, s1 = np.mean(sens_seg, 0)
    assert s0 > 0.8 and s1 < 0.55


def test_correlated_judge_errors_are_estimated():
    rng = np.random.default_rng(9)
    pi = np.array([[0.15, 0.1, 0.1, 0.65]])
    conf = np.broadcast_to(_binary_confusion(0.85, 0.8)[None, None, None], (1, 2, 1, 2, 2)).copy()
    t, d = simulate_judges(pi, conf, 4000, 300, rng, shared_error=0.5)
    (fit,) = fit_pairs([t], FitSettings(seed=1))
    dep = PairFit.flat(fit.error_dependence(0))
    lo, hi = np.quantile(dep, [0.025, 0.975])
    print("error dependence", round(float(dep.mean()), 2), (round(float(lo), 2), round(float(hi), 2)))
    assert lo > 1.3  # independence given the truth (1) excluded
    lo_d, hi_d = _interval(fit.delta)
    assert lo_d[0] <= d[0] <= hi_d[0]
    (indep,) = fit_pairs([simulate_judges(pi, conf, 4000, 300, rng)[0]], FitSettings(seed=1))
    lo, hi = np.quantile(PairFit.flat(indep.error_dependence(0)), [0.025, 0.975])
    assert lo < 1.0 < hi


def test_xstest_segment_intervals_cover_the_all_human_delta():
    """All 20 ordered pairs of the 5 XSTest models, 40 / 80 / 120 random prompts labelled, 2 seeds each."""
    X = bench.load_xstest()
    pairs = list(itertools.permutations(bench.XSTEST_MODELS, 2))
    tables, truths, budgets = [], [], []
    for budget in (40, 80, 120):
        for seed in range(2):
            rng = np.random.default_rng(1000 * budget + seed)
            lab = np.zeros(len(X.items), bool)
            lab[rng.choice(len(X.items), budget, replace=False)] = True
            for inc, cand in pairs:
                tables.append(X.table(inc, cand, lab))
                truths.append(X.truth(inc, cand))
                budgets.append(budget)
    fits = fit_pairs(tables, dataclasses.replace(FAST, seed=10))
    seg_hits: dict[int, list[bool]] = {40: [], 80: [], 120: []}
    overall_hits = []
    for f, (d_seg, d_all), b in zip(fits, truths, budgets, strict=True):
        lo, hi = _interval(f.delta)
        seg_hits[b] += list((lo <= d_seg) & (d_seg <= hi))
        lo, hi = np.quantile(PairFit.flat(f.overall(f.delta, X.shares)), [0.025, 0.975])
        overall_hits.append(lo <= d_all <= hi)
    cover = {b: float(np.mean(h)) for b, h in seg_hits.items()}
    print("segment coverage", cover, "overall", np.mean(overall_hits))
    assert all(c >= 0.9 for c in cover.values())  # 80 correlated intervals per budget; full run: benchmarks
    assert np.mean([h for v in seg_hits.values() for h in v]) >= 0.93
    assert np.mean(overall_hits) >= 0.93
