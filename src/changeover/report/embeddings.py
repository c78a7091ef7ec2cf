"""The embedding section: top-k overlap between the old and the new index (distribution,
worst queries, verdict) and the adapter results next to a full re-index.

Section input is ``EmbeddingStats``; ``embedding_stats(events)`` reads it from the
``embeddings.*`` events the embedding feature appends (payloads ``{"overlap": [...],
"k": 10, "worst": [...]}`` and ``{"adapter": [{"method": ..., metric: value}]}``); the
embedding feature may also construct it directly and pass it to ``write_report``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from changeover.store.events import Event

PRESERVES, INVESTIGATE = 0.8, 0.7  # the default thresholds of the embedding issue


@dataclass(slots=True)
class EmbeddingStats:
    """Section input for the embedding migration."""

    overlap: np.ndarray                          # top-k overlap per query, in [0, 1]
    k: int = 10
    old_model: str | None = None
    new_model: str | None = None
    worst: list[dict[str, Any]] = field(default_factory=list)     # {"query", "overlap"}
    adapter: list[dict[str, Any]] = field(default_factory=list)   # rows: {"method", metric: value, ...}

    @property
    def mean_overlap(self) -> float:
        return float(np.mean(self.overlap)) if self.overlap.size else float("nan")

    @property
    def verdict(self) -> str:
        m = self.mean_overlap
        if m >= PRESERVES:
            return "preserves retrieval"
        return "investigate" if m < INVESTIGATE else "borderline"

    @property
    def adapter_columns(self) -> list[str]:
        cols: list[str] = []
        for row in self.adapter:
            cols += [k for k in row if k != "method" and k not in cols]
        return cols


def embedding_stats(events: Iterable[Event]) -> EmbeddingStats | None:
    """The latest overlap and adapter results found in ``embeddings.*`` events."""
    stats: EmbeddingStats | None = None
    adapter: list[dict[str, Any]] = []
    for e in events:
        if not e.kind.startswith("embeddings"):
            continue
        p = e.payload
        if isinstance(p.get("overlap"), list) and p["overlap"]:
            stats = EmbeddingStats(np.asarray(p["overlap"], float), int(p.get("k", 10)),
                                   p.get("old_model") or p.get("from"), p.get("new_model") or p.get("to"),
                                   list(p.get("worst") or []))
        if isinstance(p.get("adapter"), list):
            adapter = [dict(row) for row in p["adapter"] if isinstance(row, dict)]
    if stats is None:
        return None
    stats.adapter = adapter
    return stats
