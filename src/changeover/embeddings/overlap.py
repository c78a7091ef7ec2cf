"""Top-k overlap between two retrievals of the same queries, its distribution and a verdict.

Overlap of one query = |top-k(old) ∩ top-k(new)| / k. The mean over the
common queries is compared with the spec's thresholds: at or above
``preserves`` the new index preserves retrieval; below ``investigate`` it
needs investigation; in between, review the lowest-overlap queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from changeover.embeddings.config import Thresholds

PRESERVES = "preserves retrieval"
REVIEW = "review"
INVESTIGATE = "investigate"


def overlaps(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]], k: int) -> np.ndarray:
    """Per-query share of the top-k of ``a`` also in the top-k of ``b``."""
    if len(a) != len(b):
        raise ValueError("both retrievals must answer the same queries")
    return np.array([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a, b, strict=False)], dtype=float)


def verdict(mean_overlap: float, thresholds: Thresholds) -> str:
    if mean_overlap >= thresholds.preserves:
        return PRESERVES
    if mean_overlap < thresholds.investigate:
        return INVESTIGATE
    return REVIEW


@dataclass
class OverlapReport:
    k: int
    query_ids: list[str]
    overlap: np.ndarray
    thresholds: Thresholds

    @property
    def mean(self) -> float:
        return float(self.overlap.mean()) if len(self.overlap) else float("nan")

    @property
    def verdict(self) -> str:
        return verdict(self.mean, self.thresholds)

    def quantiles(self) -> dict[str, float]:
        qs = np.quantile(self.overlap, [0.05, 0.25, 0.5, 0.75, 0.95]) if len(self.overlap) else [np.nan] * 5
        return dict(zip(["p05", "p25", "median", "p75", "p95"], (float(q) for q in qs), strict=False))

    def histogram(self) -> dict[str, int]:
        """Number of queries per overlap value (0/k .. k/k)."""
        counts = np.bincount(np.rint(self.overlap * self.k).astype(int), minlength=self.k + 1)
        return {f"{i}/{self.k}": int(c) for i, c in enumerate(counts)}

    def worst(self, n: int = 10) -> list[tuple[str, float]]:
        order = np.argsort(self.overlap, kind="stable")[:n]
        return [(self.query_ids[i], float(self.overlap[i])) for i in order]

    def to_json(self) -> dict:
        return {
            "k": self.k,
            "queries": len(self.query_ids),
            "mean_overlap": round(self.mean, 4),
            "verdict": self.verdict,
            "thresholds": self.thresholds.model_dump(),
            "quantiles": self.quantiles(),
            "histogram": self.histogram(),
            "worst": [{"query": q, "overlap": o} for q, o in self.worst()],
        }


def overlap_report(
    query_ids: Sequence[str], old: Sequence[Sequence[str]], new: Sequence[Sequence[str]], k: int, thresholds: Thresholds
) -> OverlapReport:
    return OverlapReport(k, list(query_ids), overlaps(old, new, k), thresholds)
