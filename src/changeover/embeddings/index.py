"""The vector index interface and the embedded default: exact numpy search over vectors
persisted in the store (SQLite or PostgreSQL), one version per set of rows.

``open_index(store, backend)`` returns the backend the spec asks for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from sqlalchemy import Connection, delete, func, select

from changeover.embeddings.config import HnswConfig
from changeover.embeddings.errors import BackendError
from changeover.embeddings.schema import TABLES, insert_ignore, vectors
from changeover.store import Store

SearchResult = tuple[list[list[str]], np.ndarray]  # per query: doc ids best first; scores [q, k]


def to_blob(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype="<f4").tobytes()


def from_blob(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<f4")


def top_k(scores: np.ndarray, ids: Sequence[str], k: int) -> SearchResult:
    """Best ``k`` columns per row of a [queries, docs] similarity matrix (ties by position)."""
    k = min(k, scores.shape[1])
    if k == 0:
        return [[] for _ in range(scores.shape[0])], np.empty((scores.shape[0], 0), np.float32)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1)
    return [[ids[j] for j in row] for row in best], np.take_along_axis(scores, best, axis=1)


class VectorIndex(ABC):
    """Versioned vectors of documents: add inside a transaction, search one version."""

    backend: str

    def __init__(self, store: Store):
        self.store = store

    @abstractmethod
    def add(self, conn: Connection, version: str, ids: Sequence[str], matrix: np.ndarray) -> None:
        """Insert vectors in the caller's transaction (so progress and vectors commit together).

        Idempotent: a (version, document) already stored is kept, never an error."""

    @abstractmethod
    def ids(self, version: str) -> set[str]: ...

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Number of vectors per model version."""

    @abstractmethod
    def load(self, version: str, ids: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        """(doc ids, [n, dim] matrix) of a version, all documents or the given ones."""

    @abstractmethod
    def search(self, version: str, queries: np.ndarray, k: int) -> SearchResult: ...

    @abstractmethod
    def drop(self, conn: Connection, version: str) -> int:
        """Delete a version's vectors; returns how many."""

    def approximate(self, version: str) -> bool:
        """Whether ``search`` on this version may miss true neighbours (an ANN index answers it)."""
        return False

    def exact_search(self, version: str, queries: np.ndarray, k: int) -> SearchResult:
        """Exact top-k, the baseline an approximate index is measured against (default: ``search``)."""
        return self.search(version, queries, k)

    def search_settings(self, version: str, k: int) -> dict[str, int]:
        """What shapes ``search`` on this version (an ANN index's build and query parameters); {} if exact."""
        return {}

    def finish(self, version: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """Called once a version is completely embedded (pgvector builds its index here)."""

    def count(self, version: str) -> int:
        return self.counts().get(version, 0)


class NumpyIndex(VectorIndex):
    """Exact cosine search with numpy; vectors persisted as float32 blobs in the store.

    A version's matrix is loaded once per process and kept until this process
    adds to or drops that version (``refresh`` forces a reload).
    """

    backend = "numpy"

    def __init__(self, store: Store):
        super().__init__(store)
        store.ensure(*TABLES)
        self._cache: dict[str, tuple[list[str], np.ndarray]] = {}

    def add(self, conn: Connection, version: str, ids: Sequence[str], matrix: np.ndarray) -> None:
        if len(ids):
            conn.execute(
                insert_ignore(conn, vectors),
                [
                    {"model_version": version, "doc_id": i, "vector": to_blob(v)}
                    for i, v in zip(ids, matrix, strict=False)
                ],
            )
        self._cache.pop(version, None)

    def ids(self, version: str) -> set[str]:
        with self.store.engine.connect() as conn:
            return set(conn.execute(select(vectors.c.doc_id).where(vectors.c.model_version == version)).scalars())

    def counts(self) -> dict[str, int]:
        q = select(vectors.c.model_version, func.count()).group_by(vectors.c.model_version)
        with self.store.engine.connect() as conn:
            return {v: int(n) for v, n in conn.execute(q).all()}

    def load(self, version: str, ids: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        q = (
            select(vectors.c.doc_id, vectors.c.vector)
            .where(vectors.c.model_version == version)
            .order_by(vectors.c.doc_id)
        )
        with self.store.engine.connect() as conn:
            rows = conn.execute(q).all()
        if ids is not None:
            wanted = set(ids)
            rows = [r for r in rows if r.doc_id in wanted]
        if not rows:
            return [], np.empty((0, 0), np.float32)
        return [r.doc_id for r in rows], np.stack([from_blob(r.vector) for r in rows])

    def refresh(self, version: str | None = None) -> None:
        if version is None:
            self._cache.clear()
        else:
            self._cache.pop(version, None)

    def search(self, version: str, queries: np.ndarray, k: int) -> SearchResult:
        if version not in self._cache:
            self._cache[version] = self.load(version)
        ids, matrix = self._cache[version]
        if not ids:
            return [[] for _ in range(len(queries))], np.empty((len(queries), 0), np.float32)
        return top_k(np.atleast_2d(queries).astype(np.float32) @ matrix.T, ids, k)

    def drop(self, conn: Connection, version: str) -> int:
        self._cache.pop(version, None)
        return int(conn.execute(delete(vectors).where(vectors.c.model_version == version)).rowcount or 0)


def open_index(store: Store, backend: str = "numpy", hnsw: HnswConfig | None = None) -> VectorIndex:
    """The vector backend named in the spec: 'numpy' (default) or 'pgvector' (with its HNSW settings)."""
    if backend == "pgvector":
        from changeover.embeddings.pgvector import PgvectorIndex

        return PgvectorIndex(store, hnsw)
    if backend != "numpy":
        raise BackendError(f"embeddings.backend: unknown backend {backend!r}; use 'numpy' or 'pgvector'")
    return NumpyIndex(store)
