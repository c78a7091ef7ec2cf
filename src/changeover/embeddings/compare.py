"""Old index vs new index on the same queries: top-k overlap, its verdict, and (with
relevance judgments) recall@k / nDCG@k of old, new and new-through-the-adapter.

Overlap and quality compare the *models*, so they are measured on exact search.
Where an approximate index (pgvector HNSW) serves, its own error is reported
apart: each index's recall@k against exact search on the same queries (mean and
per-query quantiles), the index's settings as built (``m``, ``ef_construction``
read back from PostgreSQL) and the ``ef_search`` used, and the overlap old vs
new as the two indexes actually serve it. Mixing the two would blame the new
model for the index's misses (at 100k random vectors and pgvector's default
ef_search, the index alone kept 16% of the top-10).
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
class IndexAccuracy:
    """An approximate index measured against exact search on the same queries."""

    recall: dict[str, np.ndarray] = field(default_factory=dict)  # old / new: per query, ANN top-k vs exact
    settings: dict[str, dict[str, int]] = field(default_factory=dict)  # old / new: m, ef_construction, ef_search
    served_overlap: np.ndarray | None = None  # per query: top-k old vs new as the indexes serve them

    def to_json(self) -> dict | None:
        if not self.recall:
            return None
        quantiles = ("p05", "median")
        return {
            "recall": {n: round(float(r.mean()), 4) for n, r in self.recall.items()},
            "recall_quantiles": {
                n: dict(zip(quantiles, (float(q) for q in np.quantile(r, [0.05, 0.5])), strict=True))
                for n, r in self.recall.items()
            },
            "settings": self.settings,
            "served_overlap": None if self.served_overlap is None else round(float(self.served_overlap.mean()), 4),
        }


@dataclass
class Comparison:
    old_version: str
    new_version: str
    overlap: OverlapReport
    quality: dict[str, dict[str, float]] = field(default_factory=dict)  # old / new / adapted
    adapter: dict | None = None
    index: IndexAccuracy = field(default_factory=IndexAccuracy)

    @property
    def index_recall(self) -> dict[str, float]:
        """old / new: the approximate index's mean top-k recall against exact search ({} if exact)."""
        return {n: float(r.mean()) for n, r in self.index.recall.items()}

    def to_json(self) -> dict:
        return {
            "old": self.old_version,
            "new": self.new_version,
            **self.overlap.to_json(),
            "search": "exact",
            "index_recall": {n: round(v, 4) for n, v in self.index_recall.items()} or None,
            "index": self.index.to_json(),
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
    served = {"old": old_hits, "new": new_hits}
    for name, version, vectors, exact in (
        ("old", old_version, old_queries, old_hits),
        ("new", new_version, new_queries, new_hits),
    ):
        if index.approximate(version):
            served[name], _ = index.search(version, vectors, k)
            result.index.recall[name] = overlaps(served[name], exact, k)
            result.index.settings[name] = index.search_settings(version, k)
    if result.index.recall:
        result.index.served_overlap = overlaps(served["old"], served["new"], k)
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
