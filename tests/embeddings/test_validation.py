"""Overlap old vs new, its verdict, recall/nDCG on Cranfield judgments, and the adapters:
chosen by held-out overlap, stored, served through."""

from __future__ import annotations

import numpy as np
import pytest

from changeover.embeddings.adapter import active_adapter, fit_adapter, save_adapter
from changeover.embeddings.compare import compare
from changeover.embeddings.config import Thresholds
from changeover.embeddings.index import NumpyIndex, top_k
from changeover.embeddings.linear_maps import FORMS, fit_affine, fit_lowrank, fit_procrustes, select
from changeover.embeddings.metrics import judged, ndcg_at_k, quality, recall_at_k
from changeover.embeddings.overlap import INVESTIGATE, PRESERVES, REVIEW, overlaps, verdict


def test_overlap_and_verdict():
    a = [["1", "2", "3", "4"], ["1", "2", "3", "4"]]
    b = [["4", "3", "9", "8"], ["1", "2", "3", "4"]]
    assert overlaps(a, b, 4).tolist() == [0.5, 1.0]
    t = Thresholds()
    assert verdict(0.85, t) == PRESERVES and verdict(0.75, t) == REVIEW and verdict(0.69, t) == INVESTIGATE


def test_metrics_by_hand():
    rel = {"a": 3.0, "b": 1.0}
    assert recall_at_k(["a", "x", "y"], rel, 3) == 0.5
    assert ndcg_at_k(["a", "b"], rel, 2) == pytest.approx(1.0)
    assert ndcg_at_k(["b", "a"], rel, 2) == pytest.approx((1 + 3 / np.log2(3)) / (3 + 1 / np.log2(3)))


def test_compare_on_cranfield(store, embedded, subset):
    index = NumpyIndex(store)
    with store.engine.begin() as conn:
        index.add(conn, embedded.old_key, embedded.ids, embedded.old_docs)
        index.add(conn, embedded.new_key, embedded.ids, embedded.new_docs)
    result = compare(
        index,
        embedded.old_key,
        embedded.new_key,
        subset.queries,
        embedded.old_queries,
        embedded.new_queries,
        k=10,
        qrels=subset.qrels,
    )
    rep = result.overlap
    assert 0.0 < rep.mean < 1.0 and sum(rep.histogram().values()) == len(subset.queries)
    worst = rep.worst(5)
    assert [o for _, o in worst] == sorted(o for _, o in worst) and worst[0][1] == rep.overlap.min()
    assert rep.verdict == verdict(rep.mean, Thresholds())
    # both real models retrieve far better than chance on the judged queries
    relevant = judged([q.id for q in subset.queries], subset.qrels, embedded.ids)
    rng = np.random.default_rng(0)
    shuffled = [list(rng.permutation(embedded.ids)[:10]) for _ in subset.queries]
    chance = quality([q.id for q in subset.queries], shuffled, relevant, 10)["ndcg@10"]
    for name in ("old", "new"):
        assert result.quality[name]["ndcg@10"] > chance + 0.2, (name, result.quality, chance)
    assert result.quality["old"]["judged_queries"] == len(relevant)


def test_forms_have_their_shapes(embedded):
    x, y = embedded.new_docs, embedded.old_docs
    p = fit_procrustes(x, y)
    assert np.allclose(p.weights.T @ p.weights, np.eye(x.shape[1]), atol=1e-4)
    low = fit_lowrank(x, y, rank=16)
    assert np.linalg.matrix_rank(low.weights, tol=1e-4) == 16
    aff = fit_affine(x, y, ridge=0.1)
    # on its own training pairs the affine map is closer to the targets than the rotation
    err = {m.form: np.linalg.norm(x @ m.weights + m.bias - y) for m in (p, aff)}
    assert err["affine"] < err["procrustes"]


def test_adapter_is_chosen_by_heldout_overlap_and_beats_no_adapter(store, embedded, subset):
    sel = select(embedded.new_docs, embedded.old_docs, embedded.new_queries, k=10, seed=1)
    best = max(sel.scores.values())
    assert sel.scores[sel.chosen.label] == pytest.approx(best)
    assert set(sel.best_per_form) == set(FORMS) and sel.train + sel.heldout == len(embedded.ids)
    assert sel.pool >= min(len(embedded.ids), 50)  # never scored where top-10 overlaps by construction
    assert min(sel.scores.values()) < 1.0
    # through the adapter, new-model queries find on the old index much of what the re-index finds;
    # raw new-model queries on the old index (what a silent mismatch does) find far less
    ids = embedded.ids
    reindexed, _ = top_k(embedded.new_queries @ embedded.new_docs.T, ids, 10)
    adapted, _ = top_k(sel.chosen.apply(embedded.new_queries) @ embedded.old_docs.T, ids, 10)
    mismatched, _ = top_k(embedded.new_queries @ embedded.old_docs.T, ids, 10)
    assert overlaps(adapted, reindexed, 10).mean() > overlaps(mismatched, reindexed, 10).mean() + 0.2
    # stored with its version pair and served back identically
    index = NumpyIndex(store)
    with store.engine.begin() as conn:
        index.add(conn, embedded.old_key, ids, embedded.old_docs)
        index.add(conn, embedded.new_key, ids, embedded.new_docs)
    sel2, pair_ids = fit_adapter(index, embedded.new_key, embedded.old_key, embedded.new_queries, pairs=50)
    assert len(pair_ids) == min(50, len(ids))
    aid = save_adapter(store, embedded.new_key, embedded.old_key, sel.chosen, {"kept_share": best}, "ops")
    stored = active_adapter(store, embedded.new_key, embedded.old_key)
    assert stored.id == aid and stored.map.label == sel.chosen.label
    assert np.allclose(stored.map.apply(embedded.new_queries[:5]), sel.chosen.apply(embedded.new_queries[:5]))
    assert active_adapter(store, embedded.old_key, embedded.new_key) is None  # direction matters
