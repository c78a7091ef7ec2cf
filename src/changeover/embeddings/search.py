"""Versioned search: a query vector carries its model version, and is refused by an index
of another version unless an active adapter maps one into the other.

Cosine scores between vectors of two different models still look plausible,
so a mismatch would not fail loudly by itself: it would just return worse
documents. Hence the check on every search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from changeover.embeddings.adapter import StoredAdapter, active_adapter
from changeover.embeddings.errors import VersionMismatchError
from changeover.embeddings.index import VectorIndex
from changeover.embeddings.serving import serving_index


@dataclass(frozen=True)
class QueryVectors:
    """Query embeddings [n, dim] and the ``name@version`` of the model that made them."""

    vectors: np.ndarray
    model_version: str


@dataclass
class Hits:
    ids: list[list[str]]
    scores: np.ndarray
    index_version: str
    adapter_id: int | None


class Retriever:
    """Searches the serving index (the switch flag), re-reading it at most every ``ttl`` seconds."""

    def __init__(self, index: VectorIndex, ttl: float = 1.0):
        self.index = index
        self.ttl = ttl
        self._cached: tuple[float, str | None] | None = None
        self._adapters: dict[tuple[str, str], tuple[float, StoredAdapter | None]] = {}

    def serving(self) -> str | None:
        t = time.monotonic()
        if self._cached is None or t - self._cached[0] > self.ttl:
            self._cached = (t, serving_index(self.index.store))
        return self._cached[1]

    def _adapter(self, query_version: str, index_version: str) -> StoredAdapter | None:
        t = time.monotonic()
        hit = self._adapters.get((query_version, index_version))
        if hit is None or t - hit[0] > self.ttl:
            hit = (t, active_adapter(self.index.store, query_version, index_version))
            self._adapters[(query_version, index_version)] = hit
        return hit[1]

    def search(self, query: QueryVectors, k: int = 10, index_version: str | None = None) -> Hits:
        """Top-k documents of ``index_version`` (default: the serving index) for the queries."""
        version = index_version or self.serving()
        if version is None:
            raise VersionMismatchError(
                "no index serves yet: build one with `changeover embeddings reembed "
                "--to <model>` (the first complete index serves)"
            )
        vectors = np.atleast_2d(query.vectors)
        if query.model_version == version:
            ids, scores = self.index.search(version, vectors, k)
            return Hits(ids, scores, version, None)
        adapter = self._adapter(query.model_version, version)
        if adapter is None:
            raise VersionMismatchError(
                f"query vectors come from {query.model_version} but the index searched holds {version} "
                f"vectors; their scores are not comparable. Embed the query with {version}, or fit and activate "
                f"an adapter (`changeover embeddings fit-adapter`), or switch the serving index "
                f"(`changeover embeddings switch --to ...`)"
            )
        ids, scores = self.index.search(version, adapter.map.apply(vectors), k)
        return Hits(ids, scores, version, adapter.id)
