"""The fit converges where the method is used: production scale and 3 candidates x 3 dimensions x 6 segments.

Tables are drawn as counts (``simulate_counts``), so 10^6 items per segment
cost what 10^3 do. Fitted as ``assess`` fits them: default ``FitSettings`` under
the default ``SamplingPolicy`` (a fit that misses is sampled again, longer, by
itself); every segment delta, the overall delta and both pass rates must have
R-hat <= 1.01, bulk and tail ESS >= 400, and no divergent transition.
"""

import dataclasses

import numpy as np

from changeover.assessment.sampling import SamplingPolicy, sample
from changeover.stats.diagnostics import ess, ess_tail, rhat
from changeover.stats.model import FitSettings, PairFit, fit_pairs
from changeover.stats.simulate import production_scenario, simulate_counts


def _worst(fits: list[PairFit]) -> tuple[float, float, float, int]:
    qs = []
    for f in fits:
        S = f.delta.shape[-1]
        qs += [f.delta[..., s] for s in range(S)] + [f.delta.mean(-1)]
        qs += [f.incumbent_rate[..., s] for s in range(S)] + [f.candidate_rate[..., s] for s in range(S)]
    return (
        max(rhat(q) for q in qs),
        min(ess(q) for q in qs),
        min(ess_tail(q) for q in qs),
        sum(f.divergences for f in fits),
    )


def _as_assess_fits(tables: list, seed: int) -> list[PairFit]:
    """The fits as ``assess`` makes them; asserts every one converged, by the policy and by ``_worst``."""
    sampled, rounds = sample(tables, np.full(6, 1 / 6), FitSettings(seed=seed), SamplingPolicy())
    fits = [s.fit for s in sampled]
    r, e, et, div = _worst(fits)
    longer = [s.scale for s in sampled if s.scale > 1]
    print(f"R-hat max {r:.4f}, bulk ESS min {e:.0f}, tail ESS min {et:.0f}, divergences {div}; {rounds} round(s), "
          f"{len(longer)} fit(s) sampled longer {longer}")  # fmt: skip
    assert all(s.converged for s in sampled)
    assert r <= 1.01 and e >= 400 and et >= 400 and div == 0
    return fits


def test_production_scale_meets_the_diagnostics():
    """6 segments x 10^4 / 10^6 items, 0.05% / 1% labelled, judge sens 0.85-0.95, spec 0.75-0.9 (0.3 lower)."""
    rng = np.random.default_rng(3)
    tables, truths = [], []
    for n in (10**4, 10**6):
        for share in (0.0005, 0.01):
            t, d_seg, _ = simulate_counts(production_scenario(rng, n, share), rng)
            tables.append(t)
            truths.append(d_seg)
    fits = _as_assess_fits(tables, 1)
    # and the intervals are honest at this scale
    hits = [
        np.mean((lo <= d) & (d <= hi))
        for f, d in zip(fits, truths, strict=True)
        for lo, hi in [np.quantile(PairFit.flat(f.delta), [0.025, 0.975], axis=0)]
    ]
    assert np.mean(hits) >= 0.8


def test_three_candidates_three_dimensions_six_segments():
    """9 comparisons in one call (two binary dimensions, one 5-level ordinal), 10^5 items per segment."""
    rng = np.random.default_rng(10**5)
    tables = [
        simulate_counts(production_scenario(rng, 10**5, 0.002, levels=k), rng)[0] for _ in range(3) for k in (2, 2, 5)
    ]
    _as_assess_fits(tables, 2)


def test_the_fit_does_not_grow_with_the_items():
    """The sampled part sees labelled cells only; 10^3 or 10^6 items give tables of similar size."""
    rng = np.random.default_rng(4)
    sizes = {}
    for n in (10**3, 10**6):
        sc = dataclasses.replace(production_scenario(rng, n, 0.0), label_share=200 / n)
        sizes[n] = simulate_counts(sc, rng)[0].cells
    assert sizes[10**6] <= 1.5 * sizes[10**3] + 50


def test_same_seed_same_draws_and_longer_runs_allowed():
    rng = np.random.default_rng(6)
    t = simulate_counts(production_scenario(rng, 10**4, 0.01), rng)[0]
    (a,) = fit_pairs([t], FitSettings(seed=5, warmup=100, draws=50))
    (b,) = fit_pairs([t], FitSettings(seed=5, warmup=100, draws=50))
    np.testing.assert_array_equal(a.delta, b.delta)
    (c,) = fit_pairs([t], FitSettings(seed=5, warmup=100, draws=120))
    assert c.delta.shape == (4, 120, 6)
