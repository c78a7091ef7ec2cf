"""Labels still needed (bounded, stable across fits) and the ranking of labels (only responses that exist)."""

import dataclasses

import numpy as np
import pytest

from changeover.stats.labelvalue import LabelTarget, estimate, labels_needed, open_cells, rank_labels
from changeover.stats.model import FitSettings, fit_pairs
from changeover.stats.simulate import Scenario, simulate

MARGIN, CONF = 0.02, 0.95


def _target(table, seed: int = 0, chains: int = 4, draws: int = 250) -> LabelTarget:
    (fit,) = fit_pairs([table], FitSettings(chains=chains, draws=draws, seed=seed))
    S = table.n_segments
    undecided = [("overall", None)] + ([(f"s{s}", s) for s in range(S)] if S > 1 else [])
    return LabelTarget("cand", "correctness", fit, np.ones(S) / S, MARGIN, CONF, undecided)


@pytest.fixture(scope="module")
def near_margin():
    """A candidate right at the margin in one segment: the case where the old estimate blew up."""
    sc = Scenario("near", [0.80, 0.75], [0.79, 0.73], items_per_segment=300, labels_per_segment=15)
    table, _, _ = simulate(sc, np.random.default_rng(3))
    return table


def test_labels_needed_is_bounded_by_the_open_responses(near_margin):
    t = _target(near_margin)
    est = estimate(t)
    open_total = int(sum(t.fit.table.n[open_cells(t.fit, m)].sum() for m in (0, 1)))
    assert 0 < est.needed <= est.open <= open_total
    assert labels_needed([t]) == {"cand": {"correctness": est.needed}}
    # a tiny migration: far fewer responses than the 1/sqrt(n) law would ask for
    small, _, _ = simulate(
        Scenario("tiny", [0.8], [0.78], items_per_segment=40, labels_per_segment=5), np.random.default_rng(1)
    )
    e = estimate(_target(small))
    assert e.needed <= e.open == 2 * 40 - 2 * 5
    assert e.exhausted == (e.needed == e.open)


def test_labels_needed_is_stable_across_fits(near_margin):
    """The CLI (4 chains) and the labelling app (2 chains, another seed) must give similar numbers."""
    a = estimate(_target(near_margin, seed=1, chains=4)).needed
    b = estimate(_target(near_margin, seed=7, chains=2)).needed
    assert a > 0 and b > 0
    assert max(a, b) / min(a, b) < 2.0, (a, b)


def test_decided_comparisons_need_no_labels(near_margin):
    t = dataclasses.replace(_target(near_margin), undecided=[])
    assert estimate(t).needed == 0 and labels_needed([t]) == {"cand": {"correctness": 0}}
    assert rank_labels([t], 10) == []


def test_rank_labels_ranks_only_open_responses(near_margin):
    t = _target(near_margin)
    ranked = rank_labels([t], 200)
    assert ranked
    table = t.fit.table
    per_cell: dict[tuple[int, int], int] = {}
    for r in ranked:
        tot = table.tot0 if r.model == 0 else table.tot1
        assert tot[r.cell] == 0 and table.n[r.cell] > 0  # an unlabelled response that exists
        per_cell[(r.model, r.cell)] = per_cell.get((r.model, r.cell), 0) + 1
    assert all(k <= table.n[cell] for (_, cell), k in per_cell.items())
    # a cell whose responses were all labelled drops out of the ranking
    labelled_cells = np.flatnonzero(table.tot1 > 0)
    assert not any(r.model == 1 and r.cell in set(labelled_cells.tolist()) for r in ranked)


def test_known_truth_and_labelled_responses_are_not_open():
    """An error response (truth known) or a labelled one needs no label; an empty cell has no response."""
    from types import SimpleNamespace

    table = SimpleNamespace(
        n=np.array([5, 3, 0, 4]),
        tot0=np.array([0, 1, 0, 0]),
        tot1=np.array([0, 0, 0, 0]),
        known0=np.array([-1, -1, -1, 0]),  # cell 3: the incumbent's responses are errors
        known1=np.array([-1, 1, -1, -1]),
    )
    table.labellable = lambda model: table.n  # one sample per item: every answer can be shown
    fit = SimpleNamespace(table=table)
    assert open_cells(fit, 0).tolist() == [True, False, False, False]
    assert open_cells(fit, 1).tolist() == [True, False, False, True]


class _BetaWorld:
    """Synthetic posterior draws for a batch test: model 1's cells A and B, P(acceptable) ~ Beta,
    delta = wA pA - wB pB (the cells' shares of traffic).

    Under a Beta posterior the value of the k-th label in a cell is known exactly: the expected variance
    of p after k more labels is V n0 / (n0 + k) (n0 = a + b), so the k-th label removes
    V n0 / ((n0 + k - 1)(n0 + k)). A well-known cell (large n0) keeps almost all of its value per label;
    a barely known one loses most of it after a label or two.
    """

    def __init__(self, n0: tuple[float, float], w: tuple[float, float], mean: float = 0.7, draws: int = 40_000):
        from types import SimpleNamespace

        rng = np.random.default_rng(0)
        self.n0, self.w, self.mean = np.array(n0), np.array(w), mean
        self.p = np.stack([rng.beta(mean * k, (1 - mean) * k, draws) for k in n0], axis=1)  # [T, 2]
        zeros = np.zeros(2, int)
        table = SimpleNamespace(n=np.array([500, 500]), tot0=np.ones(2, int), tot1=zeros, known0=-np.ones(2, int))
        table.known1 = -np.ones(2, int)
        table.labellable = lambda model: table.n
        self.fit = SimpleNamespace(table=table, p_acceptable=lambda model: self.p)  # model 0's cells are labelled
        self.candidate, self.dimension, self.undecided = "cand", "quality", [("overall", None)]

    def quantities(self) -> np.ndarray:
        return (self.w[0] * self.p[:, 0] - self.w[1] * self.p[:, 1])[:, None]

    def exact(self, cell: int, k: int) -> float:
        """The k-th label's exact expected share of var(delta) removed."""
        n0, m = self.n0[cell], self.mean
        v = m * (1 - m) / (n0 + 1)
        return self.w[cell] ** 2 * v * n0 / ((n0 + k - 1) * (n0 + k)) / float(self.quantities().var())


def test_a_batch_values_each_label_by_what_the_ones_before_it_teach():
    """The property the queue's batches rest on (issue 15): the k-th label of a cell is worth what it adds
    after the first k-1, not 1/k of the first. With 1/k the queue spread a batch evenly over cells whatever
    was known about them; here the well-known cell A (n0 = 40, most of the traffic) keeps its value label
    after label, the barely known rare cell B (n0 = 3, a tenth of A's share) is worth as much once and
    little after."""
    world = _BetaWorld((40.0, 3.0), (1.0, 0.1))
    ranked = rank_labels([world], 30)  # 60 slots
    per_cell: dict[int, list[float]] = {0: [], 1: []}
    for r in ranked:
        assert r.model == 1
        per_cell[r.cell].append(r.value)
    for cell, values in per_cell.items():
        assert len(values) >= 3, per_cell
        for k, v in enumerate(values[:10], start=1):
            assert v == pytest.approx(world.exact(cell, k), rel=0.1), (cell, k, v, world.exact(cell, k))
    a, b = per_cell[0], per_cell[1]
    assert a[1] / a[0] > 0.9 and a[4] / a[0] > 0.75  # exact 0.95 and 0.83; 1/k would say 0.5 and 0.2
    assert b[2] / b[0] < 0.45  # exact 3 * 4 / (5 * 6) = 0.4
    assert len(a) > 2 * len(b), (len(a), len(b))  # the batch goes where labels keep teaching
    values = [r.value for r in ranked]
    assert values == sorted(values, reverse=True)


def test_the_first_label_s_value_is_the_exact_preposterior_variance_reduction(near_margin):
    """One label's value, from the draws we have: E[var(delta | y)] by reweighting the draws with each outcome."""
    t = _target(near_margin)
    best = rank_labels([t], 1)[0]
    p = t.fit.p_acceptable(best.model)[:, best.cell]
    q = t.quantities()
    var = q.var(axis=0)
    gain = 0.0
    for w in (p, 1.0 - p):
        ph, w = w.mean(), w / w.sum()
        mean_w = w @ q
        gain += float((ph * (var - (w @ q**2 - mean_w**2)) / var).sum())
    assert best.value == pytest.approx(gain, rel=1e-6)
