"""Retrieval quality against graded relevance judgments: recall@k and nDCG@k.

Queries without any judged-relevant document among the searched documents are
left out (they have no defined recall).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    gains = np.array([relevant.get(d, 0.0) for d in ranked[:k]])
    dcg = float((gains * discounts[: len(gains)]).sum())
    ideal = np.sort(np.array(list(relevant.values())))[::-1][:k]
    idcg = float((ideal * discounts[: len(ideal)]).sum())
    return dcg / idcg if idcg > 0 else 0.0


def judged(
    query_ids: Sequence[str], qrels: Mapping[str, Mapping[str, float]], documents: Collection[str]
) -> dict[str, dict[str, float]]:
    """Relevant documents per query, restricted to ``documents``; queries with none dropped."""
    docs = set(documents)
    out = {}
    for q in query_ids:
        rel = {d: g for d, g in qrels.get(q, {}).items() if d in docs and g > 0}
        if rel:
            out[q] = rel
    return out


def quality(
    query_ids: Sequence[str], ranked: Sequence[Sequence[str]], relevant: Mapping[str, Mapping[str, float]], k: int
) -> dict[str, float]:
    """Mean recall@k and nDCG@k over the judged queries."""
    rec, nd = [], []
    for q, r in zip(query_ids, ranked, strict=False):
        if q in relevant:
            rec.append(recall_at_k(r, relevant[q], k))
            nd.append(ndcg_at_k(r, relevant[q], k))
    return {
        f"recall@{k}": float(np.mean(rec)) if rec else float("nan"),
        f"ndcg@{k}": float(np.mean(nd)) if nd else float("nan"),
        "judged_queries": len(rec),
    }
