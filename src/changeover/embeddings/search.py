"""Versioned search: a query vector carries its model version, and is refused by an index
of another version unless an active adapter maps one into the other.

Cosine scores between vectors of two different models still look plausible,
so a mismatch would not fail loudly by itself: it would just return worse
documents. Hence the check on every search. A reader that hands the
``Retriever`` query *text* never meets the check: the text is embedded with
the model of the index that serves at that moment, so a switch or a rollback
changes the model and the index together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from changeover.embeddings.adapter import StoredAdapter, active_adapter
from changeover.embeddings.errors import VersionMismatchError
from changeover.embeddings.index import VectorIndex, open_index
from changeover.embeddings.serving import serving_index
from changeover.providers.embedders import Encoder, get_encoder
from changeover.store import Store


@dataclass(frozen=True)
class QueryVectors:
    """Query embeddings [n, dim] and the ``name@version`` of the model that made them."""

    vectors: np.ndarray
    model_version: str


@dataclass
class Hits:
    ids: list[list[str]]  # per query: document ids, best first
    scores: np.ndarray  # [queries, k] cosine similarity
    index_version: str  # the index searched
    adapter_id: int | None  # the adapter the query vectors went through, if any
    query_version: str  # the model that embedded the queries


class Retriever:
    """Searches the serving index (the switch flag), re-reading it at most every ``ttl`` seconds.

    ``search("text")`` (or a list of texts) embeds the query with the serving
    index's own model; ``search(QueryVectors(...))`` takes vectors a caller made
    and refuses them when their model differs from the index's and no adapter
    bridges the two. ``index`` is a ``VectorIndex`` or a ``Store`` (opened with
    ``backend``); ``encoder_for`` loads the model of a ``name@version`` key.
    """

    def __init__(
        self,
        index: VectorIndex | Store,
        ttl: float = 1.0,
        *,
        backend: str = "numpy",
        encoder_for: Callable[[str], Encoder] = get_encoder,
    ):
        self.index = open_index(index, backend) if isinstance(index, Store) else index
        self.ttl = ttl
        self.encoder_for = encoder_for
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

    def search(self, query: str | Sequence[str] | QueryVectors, k: int = 10, index_version: str | None = None) -> Hits:
        """Top-k documents of ``index_version`` (default: the serving index) for the queries."""
        version = index_version or self.serving()
        if version is None:
            raise VersionMismatchError(
                "no index serves yet: build one with `changeover embeddings reembed "
                "--to <model>` (the first complete index serves)"
            )
        if not isinstance(query, QueryVectors):
            texts = [query] if isinstance(query, str) else list(query)
            encoder = self.encoder_for(version)  # refuses a key whose model version is not installed
            query = QueryVectors(encoder.encode_queries(texts), encoder.key)
        vectors = np.atleast_2d(query.vectors)
        if query.model_version == version:
            ids, scores = self.index.search(version, vectors, k)
            return Hits(ids, scores, version, None, version)
        adapter = self._adapter(query.model_version, version)
        if adapter is None:
            raise VersionMismatchError(
                f"query vectors come from {query.model_version} but the index searched holds {version} "
                f"vectors; their scores are not comparable. Embed the query with {version}, or fit and activate "
                f"an adapter (`changeover embeddings fit-adapter`), or switch the serving index "
                f"(`changeover embeddings switch --to ...`)"
            )
        ids, scores = self.index.search(version, adapter.map.apply(vectors), k)
        return Hits(ids, scores, version, adapter.id, query.model_version)
