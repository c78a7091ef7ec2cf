"""The measurement model checked by simulation: gradients, coverage, false-GO rate, SBC.

All seeded. Sizes are chosen to run in about a minute on one core; the larger
versions are in benchmarks/bench_calibration.py.
"""

import dataclasses

import numpy as np
import pytest
from scipy.stats import chisquare

from changeover.stats import decision as dec
from changeover.stats.design import design
from changeover.stats.model import FitSettings, PairFit, _Posterior, fit_pairs
from changeover.stats.simulate import (
    LENIENT,
    STANDARD_SCENARIOS,
    Scenario,
    draw_prior,
    production_scenario,
    simulate,
    simulate_counts,
    simulate_from,
)
from changeover.stats.tables import build_table

MARGIN, CONF = 0.02, 0.95
# coverage, false GO and SBC are properties of the model: a shorter run than assess's default keeps the tests
# fast (its Monte Carlo error is part of what they check); the defaults' diagnostics: test_model_scale.py
FAST = FitSettings(warmup=300, draws=250, steps=16)
SCENARIOS = STANDARD_SCENARIOS
REPS = 24


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    t1, _, _ = simulate(dataclasses.replace(SCENARIOS[3], items_per_segment=60, labels_per_segment=10), rng)
    n = 150
    tot0 = np.where(rng.random(n) < 0.3, 2, 0)
    t2 = build_table(
        ["a", "b"],
        rng.integers(0, 2, n),
        [3, 2],
        np.stack([rng.integers(-1, 3, n), rng.integers(0, 2, n)], 1),
        np.stack([rng.integers(0, 3, n), rng.integers(-1, 2, n)], 1),
        np.minimum(rng.integers(0, 3, n), tot0),
        tot0,
        rng.integers(0, 2, n),
        rng.integers(0, 2, n),
        known1=np.where(rng.random(n) < 0.1, 0, -1),
    )
    t2 = dataclasses.replace(t2, pos1=np.minimum(t2.pos1, t2.tot1))
    # many labels in one segment: its deviations are sampled centred
    t3 = simulate_counts(production_scenario(rng, 10**5, 0.01), rng)[0]
    designs = [design(t) for t in (t1, t2, t3)]
    assert designs[2].centered.any() and not designs[0].centered.any()
    post = _Posterior(designs, 2)
    theta = post.initial(5, 2, [1, 2, 3]) + rng.normal(0, 0.3, (6, post.P))
    _, grad = post(theta)
    h = 1e-6
    for i in range(post.P):
        e = np.zeros(post.P)
        e[i] = h
        num = (post(theta + e)[0] - post(theta - e)[0]) / (2 * h)
        np.testing.assert_allclose(grad[:, i], num, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def scenario_fits():
    rng = np.random.default_rng(20261123)
    data = [(sc, *simulate(sc, rng)) for sc in SCENARIOS for _ in range(REPS)]
    fits = fit_pairs([t for _, t, _, _ in data], dataclasses.replace(FAST, seed=11))
    return data, fits


def _verdict(fit: PairFit, shares: np.ndarray) -> str:
    overall = dec.judge_delta(PairFit.flat(fit.overall(fit.delta, shares)), MARGIN, CONF).verdict
    segs = [dec.judge_delta(PairFit.flat(fit.delta[..., s]), MARGIN, CONF).verdict for s in range(fit.delta.shape[-1])]
    return dec.combine([overall, *segs])


def test_intervals_cover_the_truth(scenario_fits):
    data, fits = scenario_fits
    hits, total = 0, 0
    per_scenario = {}
    for (sc, _, d_seg, d_all), fit in zip(data, fits, strict=True):
        shares = np.ones(sc.n_segments)
        draws = [PairFit.flat(fit.overall(fit.delta, shares))] + [
            PairFit.flat(fit.delta[..., s]) for s in range(sc.n_segments)
        ]
        truths = [d_all, *d_seg]
        for x, truth in zip(draws, truths, strict=True):
            iv = dec.interval(x, CONF)
            ok = iv.lower <= truth <= iv.upper
            hits += ok
            total += 1
            per_scenario.setdefault(sc.name, []).append(ok)
    coverage = hits / total
    print({k: round(float(np.mean(v)), 3) for k, v in per_scenario.items()}, "overall", round(coverage, 3))
    assert coverage >= 0.93, per_scenario
    # no scenario may be badly off either (the lenient judge must not bias the delta)
    assert min(np.mean(v) for v in per_scenario.values()) >= 0.85


def test_false_go_rate_when_candidate_regresses(scenario_fits):
    data, fits = scenario_fits
    regress = [(sc, fit) for (sc, _, d_seg, _), fit in zip(data, fits, strict=True) if d_seg.min() < -MARGIN]
    assert len(regress) >= 3 * REPS
    false_go = np.mean([_verdict(fit, np.ones(sc.n_segments)) == dec.GO for sc, fit in regress])
    assert false_go <= 1 - CONF
    # and the method has power: a truly better candidate gets GO far more often than a worse one
    good = [(sc, fit) for (sc, _, d_seg, _), fit in zip(data, fits, strict=True) if sc.name == "better"]
    power = np.mean([_verdict(fit, np.ones(3)) == dec.GO for _, fit in good])
    print("false GO", false_go, "GO when better", power)
    assert power >= 0.2 and power > 4 * false_go


def test_false_go_at_the_margin_with_a_lenient_judge():
    """The hardest case: truth just beyond the margin, judge kinder to the candidate."""
    rng = np.random.default_rng(5)
    sc = Scenario("just worse", [0.80], [0.77], items_per_segment=1500, labels_per_segment=150, **LENIENT)
    tables = [simulate(sc, rng)[0] for _ in range(40)]
    fits = fit_pairs(tables, dataclasses.replace(FAST, seed=3, draws=150, warmup=250))
    gos = [_verdict(f, np.ones(1)) == dec.GO for f in fits]
    assert np.mean(gos) <= 1 - CONF


def test_simulation_based_calibration():
    """Ranks of the true value among posterior draws are uniform (Talts et al. 2018)."""
    rng = np.random.default_rng(99)
    n_sims, S, K = 80, 2, 3
    draws, tables = [], []
    for _ in range(n_sims):
        d = draw_prior(S, K, rng)
        draws.append(d)
        tables.append(simulate_from(d, items_per_segment=80, label_share=0.25, rng=rng))
    fits = fit_pairs(tables, dataclasses.replace(FAST, seed=7))
    ranks = {"delta": [], "incumbent rate s0": [], "judge P(top | acceptable), candidate": []}
    for d, fit in zip(draws, fits, strict=True):
        thin = slice(None, None, 10)  # ~100 nearly independent draws
        post = {
            "delta": fit.delta.mean(-1)[:, thin].ravel(),
            "incumbent rate s0": fit.incumbent_rate[:, thin, 0].ravel(),
            "judge P(top | acceptable), candidate": fit.phi[:, thin, 1, 1, K - 1].ravel(),
        }
        truth = {
            "delta": (d.pi[:, 1] - d.pi[:, 2]).mean(),
            "incumbent rate s0": d.pi[0, 2] + d.pi[0, 3],
            "judge P(top | acceptable), candidate": d.phi[1, 1, K - 1],
        }
        for k in ranks:
            ranks[k].append(np.mean(post[k] < truth[k]))
    for k, r in ranks.items():
        hist = np.histogram(r, bins=5, range=(0, 1))[0]
        p = chisquare(hist).pvalue
        print(k, hist, round(p, 4))
        assert p > 0.005, (k, hist)


def test_annotator_noise_is_estimated_from_disagreements():
    rng = np.random.default_rng(4)
    d = draw_prior(1, 2, rng)
    d = dataclasses.replace(d, noise=0.15)
    table = simulate_from(d, items_per_segment=1500, label_share=0.4, rng=rng, annotators=3)
    assert table.multi_annotator
    (fit,) = fit_pairs([table], FitSettings(seed=1))
    lo, hi = np.quantile(PairFit.flat(fit.noise), [0.025, 0.975])
    assert lo < 0.15 < hi and hi < 0.3


def test_missing_signals_and_ordinal_levels():
    rng = np.random.default_rng(8)
    d = draw_prior(2, 5, rng)
    table = simulate_from(d, items_per_segment=400, label_share=0.2, rng=rng)
    a0 = table.a0.copy()
    a0[::3] = table.levels[0]  # a third of the cells lose the incumbent's signal
    table = dataclasses.replace(table, a0=a0)
    (fit,) = fit_pairs([table], FitSettings(seed=2))
    assert fit.phi.shape[-1] == 5 and fit.divergences < 10
    assert np.allclose(fit.phi.sum(-1), 1.0)


def test_compiled_likelihood_matches_a_dense_numpy_reference():
    """The CSR kernel against eta = X w with a dense 0/1 design and the label likelihood in numpy."""
    from changeover.stats.design import label_likelihood
    from changeover.stats.likelihood import eta_rows, loglik

    rng = np.random.default_rng(12)
    tables = [
        simulate_from(draw_prior(3, K, rng, noisy=ann > 1), 200, 0.3, rng, annotators=ann)
        for K, ann in ((2, 1), (4, 3), (5, 2))
    ]
    for t in tables:
        d = design(t)
        post = _Posterior([d], 1)
        theta = post.initial(5, 1, [1]) + rng.normal(0, 0.5, (1, post.P))
        w, _, noise = post.effective(theta)
        X = np.zeros((d.E, 3, d.P))
        for k in range(d.E * 3):
            for q in d.idx[d.ptr[k] : d.ptr[k + 1]]:
                X[k // 3, k % 3, q] += 1.0
        eta = np.concatenate([np.zeros((d.E, 1)), X @ w[0, : d.P]], axis=1)
        eta = np.where(d.allowed, eta, -np.inf)
        p = np.exp(eta - eta.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        np.testing.assert_allclose(eta_rows(w[:, : d.P], d.ptr, d.idx, d.allowed)[0], p, atol=1e-12)
        lab = label_likelihood(d, noise)[0]  # [J, 4]
        ref = float((d.n * np.log((p[d.row_of_cell] * lab).sum(1)))[d.labelled].sum())
        ll = loglik(w, noise, post.fit_of[:1], post.data)
        np.testing.assert_allclose(ll[0], ref, rtol=1e-10)


def test_a_fit_does_not_depend_on_the_other_tables_of_its_call():
    """assess fits every candidate in one call, the rollout's p_regression one: the same seed, the same draws."""
    rng = np.random.default_rng(12)
    small = simulate_from(draw_prior(2, 2, rng), items_per_segment=300, label_share=0.2, rng=rng)
    larger = simulate_from(draw_prior(3, 5, rng), items_per_segment=300, label_share=0.2, rng=rng)
    settings = FitSettings(warmup=60, draws=40, seed=3)
    (alone,) = fit_pairs([small], settings)
    together = fit_pairs([larger, small], settings)[1]  # second in its call, first alone
    assert together.design.P != design(larger).P  # the call pads to the larger fit's dimension
    assert np.array_equal(alone.delta, together.delta) and np.array_equal(alone.tau, together.tau)
