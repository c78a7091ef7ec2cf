"""The embedding section: top-k overlap between the old and the new index (distribution,
worst queries, verdict) and retrieval quality of old, new and adapted queries.

Section input is ``EmbeddingStats``. ``from_comparison(data)`` reads the JSON of the
embedding feature's comparison (``Comparison.to_json()``, as written by
``changeover embeddings compare --json``); ``embedding_stats(events)`` finds the same
payload in an ``embeddings.compare*`` event, and adapter fits in
``embeddings.adapter.fitted`` events, when the store has them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from changeover.store.events import Event

PRESERVES, INVESTIGATE = 0.8, 0.7  # the embedding feature's default thresholds


@dataclass(slots=True)
class EmbeddingStats:
    """Section input for the embedding migration."""

    overlap: np.ndarray  # top-k overlap per query, in [0, 1]
    k: int = 10
    old_model: str | None = None
    new_model: str | None = None
    worst: list[dict[str, Any]] = field(default_factory=list)  # {"query", "overlap"}
    adapter: list[dict[str, Any]] = field(default_factory=list)  # rows: {"method", metric: value, ...}
    verdict_text: str | None = None  # the feature's own verdict, when given

    @property
    def mean_overlap(self) -> float:
        return float(np.mean(self.overlap)) if self.overlap.size else float("nan")

    @property
    def verdict(self) -> str:
        if self.verdict_text:
            return self.verdict_text
        m = self.mean_overlap
        if m >= PRESERVES:
            return "preserves retrieval"
        return "investigate" if m < INVESTIGATE else "review"

    @property
    def adapter_columns(self) -> list[str]:
        cols: list[str] = []
        for row in self.adapter:
            cols += [k for k in row if k != "method" and k not in cols]
        return cols


def _overlap_values(data: dict[str, Any], k: int) -> np.ndarray:
    """Per-query overlaps, from a list or rebuilt from the '{i}/{k}' histogram."""
    if isinstance(data.get("overlap"), list):
        return np.asarray(data["overlap"], float)
    values: list[float] = []
    for key, n in (data.get("histogram") or {}).items():
        hits = int(str(key).split("/", 1)[0])
        values += [hits / k] * int(n)
    return np.asarray(values, float)


def _quality_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"method": name, **metrics}
        for name, metrics in (data.get("quality") or {}).items()
        if isinstance(metrics, dict)
    ]


def from_comparison(data: dict[str, Any]) -> EmbeddingStats | None:
    """The section input from a comparison JSON (None when it holds no overlaps)."""
    k = int(data.get("k", 10))
    overlap = _overlap_values(data, k)
    if overlap.size == 0:
        return None
    return EmbeddingStats(
        overlap,
        k,
        data.get("old") or data.get("old_model"),
        data.get("new") or data.get("new_model"),
        list(data.get("worst") or []),
        _quality_rows(data) or list(data.get("adapter_rows") or []),
        data.get("verdict"),
    )


def embedding_stats(events: Iterable[Event]) -> EmbeddingStats | None:
    """The latest comparison found in ``embeddings.*`` events, with fitted adapters listed."""
    stats: EmbeddingStats | None = None
    fitted: list[dict[str, Any]] = []
    for e in events:
        if not e.kind.startswith("embeddings"):
            continue
        p = e.payload
        if "overlap" in p or "histogram" in p:
            stats = from_comparison(p) or stats
        if e.kind == "embeddings.adapter.fitted":
            fitted.append(
                {
                    "method": f"adapter: {p.get('form', '?')}",
                    **{k: v for k, v in p.items() if isinstance(v, (int, float)) and k != "id"},
                }
            )
    if stats is not None and fitted and not stats.adapter:
        stats.adapter = fitted
    return stats
