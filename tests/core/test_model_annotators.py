"""One noise rate per annotator: the kernel, old tables unchanged, and recovery of a bad annotator (seeded).

The larger comparison (more seeds, the shared rate beside it) is benchmarks/bench_annotators.py.
"""

import dataclasses

import numpy as np

from changeover.stats.design import design, label_likelihood
from changeover.stats.likelihood import loglik
from changeover.stats.model import FitSettings, PairFit, _Posterior, fit_pairs
from changeover.stats.simulate import BAD_ANNOTATOR, Annotators, Scenario, simulate, simulate_annotators
from changeover.stats.tables import build_table

FAST = FitSettings(warmup=300, draws=250, steps=16)
SCENARIO = Scenario(
    "one bad annotator", [0.80, 0.75, 0.85], [0.78, 0.73, 0.83], items_per_segment=2000, labels_per_segment=300
)
REPS = 12


def _coverage(fits: list[PairFit], truths: list[tuple[np.ndarray, float]]) -> tuple[float, float]:
    """(share of segment and overall 95% intervals covering the true delta, mean segment width)."""
    hits, widths = [], []
    for fit, (d_seg, d_all) in zip(fits, truths, strict=True):
        delta = PairFit.flat(fit.delta)
        both = np.concatenate([delta, delta.mean(1, keepdims=True)], axis=1)
        lo, hi = np.quantile(both, [0.025, 0.975], axis=0)
        truth = np.append(d_seg, d_all)
        hits.extend((lo <= truth) & (truth <= hi))
        widths.extend((hi - lo)[:-1])
    return float(np.mean(hits)), float(np.mean(widths))


def test_kernel_with_annotators_matches_numpy():
    """Per-annotator counts with an exact (settled) annotator: the compiled likelihood against numpy."""
    rng = np.random.default_rng(3)
    sc = dataclasses.replace(SCENARIO, items_per_segment=200, labels_per_segment=40)
    table, shared, _, _ = simulate_annotators(sc, Annotators([0.3, 0.05, 0.1], double=0.4, gold=5), rng)
    assert table.annotators == ("a0", "a1", "a2", "gold") and table.exact == (False, False, False, True)
    assert shared.annotators == ("", "gold")
    for t in (table, shared):
        d = design(t)
        post = _Posterior([d], 1)
        theta = post.initial(5, 1, [1]) + rng.normal(0, 0.5, (1, post.P))
        w, _, noise = post.effective(theta)
        assert noise.shape == (1, d.A) and noise[0, -1] == 0.0 and (noise[0, :-1] > 0).all()
        from changeover.stats.likelihood import eta_rows

        p = eta_rows(w[:, : d.P], d.ptr, d.idx, d.allowed)[0]
        lab = label_likelihood(d, noise)[0]
        ref = float((d.n * np.log((p[d.row_of_cell] * lab).sum(1)))[d.labelled].sum())
        ll = loglik(w, noise, post.fit_of[:1], post.data)
        np.testing.assert_allclose(ll[0], ref, rtol=1e-10)


def test_unnamed_verdicts_are_one_annotator_as_before():
    """A table without names and the same table naming the one unnamed annotator give the same draws."""
    rng = np.random.default_rng(5)
    t, _, _ = simulate(dataclasses.replace(SCENARIO, items_per_segment=150, labels_per_segment=30), rng)
    seg = np.repeat(t.seg, t.n)
    cols = [np.repeat(x, t.n, axis=0) for x in (t.a0, t.a1, t.pos0, t.tot0, t.pos1, t.tot1)]
    votes = [np.stack([cols[2], cols[3]], 1)[:, None], np.stack([cols[4], cols[5]], 1)[:, None]]
    named = build_table(t.segments, seg, 2, *cols, annotators=[""], votes0=votes[0], votes1=votes[1])
    settings = FitSettings(warmup=100, draws=50, steps=8)
    a, b = fit_pairs([t], settings)[0], fit_pairs([named], settings)[0]
    np.testing.assert_array_equal(a.delta, b.delta)
    assert a.noise.shape == (4, 50, 1) and not a.design.noisy and (a.noise == 0).all()


def test_per_annotator_noise_recovers_a_bad_annotator_and_keeps_coverage():
    """One of four annotators flips 35% of verdicts (others 3%) and does most of the candidate's labels:
    one shared rate misreads the candidate; a rate per annotator finds the bad one and keeps coverage."""
    per, shared, truths = [], [], []
    for r in range(REPS):
        t_per, t_shared, d_seg, d_all = simulate_annotators(SCENARIO, BAD_ANNOTATOR, np.random.default_rng(100 + r))
        per.append(t_per)
        shared.append(t_shared)
        truths.append((d_seg, d_all))
    fits_per = fit_pairs(per, FAST)
    fits_shared = fit_pairs(shared, FAST)
    cov_per, width_per = _coverage(fits_per, truths)
    cov_shared, width_shared = _coverage(fits_shared, truths)
    noise = np.array([[a.noise_mean for a in f.annotator_noise()] for f in fits_per])  # [REPS, 4]
    bad_in = np.mean([f.annotator_noise()[0].lower < 0.35 < f.annotator_noise()[0].upper for f in fits_per])
    print(
        f"coverage per annotator {cov_per:.3f} (width {width_per:.3f}), shared {cov_shared:.3f} "
        f"(width {width_shared:.3f}); noise {noise.mean(0).round(3)}; bad annotator's interval covers: {bad_in}"
    )
    assert cov_per >= 0.93
    assert cov_shared < 0.8
    assert 0.27 < noise[:, 0].mean() < 0.43 and (noise[:, 1:].mean(0) < 0.08).all()
    assert bad_in >= 0.8
    assert sum(f.divergences for f in fits_per) <= REPS
