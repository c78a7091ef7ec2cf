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
    fit = SimpleNamespace(table=table)
    assert open_cells(fit, 0).tolist() == [True, False, False, False]
    assert open_cells(fit, 1).tolist() == [True, False, False, True]
