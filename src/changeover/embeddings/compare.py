"""Old index vs new index on the same queries: top-k overlap, its verdict, and (with
relevance judgments) recall@k / nDCG@k of old, new and new-through-the-adapter.

Overlap and quality compare the *models*, so they are measured on exact search.
Where an approximate index (pgvector HNSW) serves, its own error is reported
apart: each index's recall@k against exact search on the same queries. Mixing
the two would blame the new model for the index's misses (at 100k random
vectors and pgvector's default ef_search, the index alone kept 16% of the top-10).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from changeover.embeddings.adapter import active_adapter
from changeover.embeddings.config import Thresholds
from changeover.embeddings.corpus import Query
from changeover.embeddings.errors import IndexIncompleteError
from changeover.embeddings.index import VectorIndex
from changeover.embeddings.metrics import judged, quality
from changeover.embeddings.overlap import OverlapReport, overlap_report, overlaps


@dataclass
class Comparison:
    old_version: str
    new_version: str
    overlap: OverlapReport
    quality: dict[str, dict[str, float]] = field(default_factory=dict)  # old / new / adapted
    adapter: dict | None = None
    index_recall: dict[str, float] = field(default_factory=dict)  # old / new: ANN top-k vs exact, if approximate

    def to_json(self) -> dict:
        return {
            "old": self.old_version,
            "new": self.new_version,
            **self.overlap.to_json(),
            "search": "exact",
            "index_recall": self.index_recall or None,
            "quality": self.quality,
            "adapter": self.adapter,
        }


def compare(
    index: VectorIndex,
    old_version: str,
    new_version: str,
    queries: Sequence[Query],
    old_queries: np.ndarray,
    new_queries: np.ndarray,
    *,
    k: int = 10,
    thresholds: Thresholds | None = None,
    qrels: Mapping[str, Mapping[str, float]] | None = None,
) -> Comparison:
    """``old_queries`` / ``new_queries``: the same queries embedded by each model."""
    old_ids, new_ids = index.ids(old_version), index.ids(new_version)
    if not old_ids or not new_ids or old_ids != new_ids:
        raise IndexIncompleteError(
            f"the two indexes do not hold the same documents ({len(old_ids)} in {old_version}, "
            f"{len(new_ids)} in {new_version}); finish `changeover embeddings reembed` for both first"
        )
    qids = [q.id for q in queries]
    old_hits, _ = index.exact_search(old_version, old_queries, k)
    new_hits, _ = index.exact_search(new_version, new_queries, k)
    result = Comparison(
        old_version, new_version, overlap_report(qids, old_hits, new_hits, k, thresholds or Thresholds())
    )
    for name, version, vectors, exact in (
        ("old", old_version, old_queries, old_hits),
        ("new", new_version, new_queries, new_hits),
    ):
        if index.approximate(version):
            served, _ = index.search(version, vectors, k)
            result.index_recall[name] = float(overlaps(served, exact, k).mean())
    adapter = active_adapter(index.store, new_version, old_version)
    adapted_hits = None
    if adapter is not None:
        adapted_hits, _ = index.search(old_version, adapter.map.apply(new_queries), k)
        result.adapter = {
            "id": adapter.id,
            "form": adapter.map.label,
            "overlap_with_new": float(overlaps(adapted_hits, new_hits, k).mean()),
            "overlap_with_old": float(overlaps(adapted_hits, old_hits, k).mean()),
        }
    if qrels:
        relevant = judged(qids, qrels, old_ids)
        result.quality["old"] = quality(qids, old_hits, relevant, k)
        result.quality["new"] = quality(qids, new_hits, relevant, k)
        if adapted_hits is not None:
            result.quality["adapted"] = quality(qids, adapted_hits, relevant, k)
    return result
