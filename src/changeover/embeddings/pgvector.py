"""PostgreSQL + pgvector backend: a side table (model version, document id, vector) with
one partial HNSW index per model version, built concurrently once the version is embedded.

The HNSW parameters come from the spec (``embeddings.hnsw``): ``m`` and
``ef_construction`` at build time, ``ef_search`` set with ``SET LOCAL`` in
each search's own transaction (so a pooled connection never carries it to
another caller). ``exact_search`` scans the version's rows without the index:
the baseline that ``compare`` measures the index's recall against.

Why a side table and not a second column: backfilling a second ``vector``
column in place rewrites every row and re-inserts it into the existing index
(measured ~70x slower than inserting new rows). The column has no fixed
dimension, so two models of different sizes share it; each partial index casts
to its version's dimension, and searches use the same expression so the
planner picks that index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from sqlalchemy import Column, Connection, Table, delete, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import UserDefinedType

from changeover.embeddings.config import HnswConfig
from changeover.embeddings.errors import BackendError
from changeover.embeddings.index import SearchResult, VectorIndex
from changeover.embeddings.schema import DOC_ID, TABLES, VERSION, insert_ignore
from changeover.store import Store
from changeover.store.schema import metadata


class Vector(UserDefinedType):
    """pgvector's ``vector`` type (no fixed dimension); values travel as '[x,y,...]' text."""

    cache_ok = True

    def get_col_spec(self, **_kw) -> str:
        return "vector"

    def bind_processor(self, dialect):
        def process(value):
            return None if value is None else literal(value)

        return process

    def bind_expression(self, bindvalue):
        return func.cast(bindvalue, self)

    def result_processor(self, dialect, coltype):
        def process(value):
            if value is None:
                return None
            return np.array(value.strip("[]").split(","), dtype=np.float32)

        return process


pgvectors = Table(
    "embedding_pgvectors",
    metadata,
    Column("model_version", VERSION, primary_key=True),
    Column("doc_id", DOC_ID, primary_key=True),
    Column("embedding", Vector(), nullable=False),
)


def literal(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(v, dtype=np.float32)) + "]"


def index_name(version: str) -> str:
    return "ix_embedding_hnsw_" + hashlib.sha256(version.encode()).hexdigest()[:12]


class PgvectorIndex(VectorIndex):
    backend = "pgvector"

    def __init__(self, store: Store, hnsw: HnswConfig | None = None):
        super().__init__(store)
        self.hnsw = hnsw or HnswConfig()
        if store.dialect != "postgresql":
            raise BackendError(
                f"embeddings.backend 'pgvector' needs a PostgreSQL store, not {store.dialect} "
                f"({store.display_url}); use --db postgresql+psycopg://... or backend 'numpy'"
            )
        try:
            with store.engine.begin() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        except DBAPIError as exc:
            raise BackendError(
                f"cannot enable pgvector on {store.display_url}: {exc.orig}; install the "
                "pgvector extension into this server (see scripts/setup.d/20-pgvector.sh)"
            ) from None
        store.ensure(*TABLES, pgvectors)
        self._dims: dict[str, int] = {}

    def add(self, conn: Connection, version: str, ids: Sequence[str], matrix: np.ndarray) -> None:
        if len(ids):
            self._dims[version] = int(matrix.shape[1])
            conn.execute(
                insert_ignore(conn, pgvectors),
                [{"model_version": version, "doc_id": i, "embedding": v} for i, v in zip(ids, matrix, strict=False)],
            )

    def ids(self, version: str) -> set[str]:
        with self.store.engine.connect() as conn:
            return set(conn.execute(select(pgvectors.c.doc_id).where(pgvectors.c.model_version == version)).scalars())

    def counts(self) -> dict[str, int]:
        q = select(pgvectors.c.model_version, func.count()).group_by(pgvectors.c.model_version)
        with self.store.engine.connect() as conn:
            return {v: int(n) for v, n in conn.execute(q).all()}

    def load(self, version: str, ids: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        q = (
            select(pgvectors.c.doc_id, pgvectors.c.embedding)
            .where(pgvectors.c.model_version == version)
            .order_by(pgvectors.c.doc_id)
        )
        if ids is not None:
            q = q.where(pgvectors.c.doc_id.in_(list(ids)))
        with self.store.engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return [], np.empty((0, 0), np.float32)
        return [r.doc_id for r in rows], np.stack([r.embedding for r in rows])

    def dim(self, version: str) -> int:
        if version not in self._dims:
            with self.store.engine.connect() as conn:
                n = conn.execute(
                    text("SELECT vector_dims(embedding) FROM embedding_pgvectors WHERE model_version = :v LIMIT 1"),
                    {"v": version},
                ).scalar()
            if n is None:
                return 0
            self._dims[version] = int(n)
        return self._dims[version]

    def finish(self, version: str) -> None:
        """Build this version's partial HNSW index (cosine), concurrently: reads go on meanwhile."""
        dim = self.dim(version)
        if not dim:
            return
        ddl = (
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{index_name(version)}" ON embedding_pgvectors '
            f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) "
            f"WITH (m = {int(self.hnsw.m)}, ef_construction = {int(self.hnsw.ef_construction)}) "
            f"WHERE model_version = '{_quote(version)}'"
        )
        with self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"SET maintenance_work_mem = '{self.hnsw.build_memory}'"))  # validated: 512MB
            try:
                conn.execute(text(ddl))
            finally:
                conn.execute(text("RESET maintenance_work_mem"))

    def has_hnsw(self, version: str) -> bool:
        with self.store.engine.connect() as conn:
            return (
                conn.execute(text("SELECT 1 FROM pg_indexes WHERE indexname = :n"), {"n": index_name(version)}).first()
                is not None
            )

    def approximate(self, version: str) -> bool:
        return self.has_hnsw(version)

    def search(self, version: str, queries: np.ndarray, k: int) -> SearchResult:
        """Top-k through the version's HNSW index, ``ef_search`` = max(spec's, k) for this transaction.

        Each query is planned with its own values (``plan_cache_mode``): psycopg
        prepares a statement after 5 runs on a connection, and the cached generic
        plan chose a sequential scan at 100k vectors (exact, ~170 ms instead of a
        few). ``LIMIT`` is a literal for the same reason.
        """
        ef = max(int(self.hnsw.ef_search), int(k))
        settings = [f"SET LOCAL hnsw.ef_search = {ef}", "SET LOCAL plan_cache_mode = force_custom_plan"]
        return self._search(version, queries, k, settings, exact=False)

    def exact_search(self, version: str, queries: np.ndarray, k: int) -> SearchResult:
        """Top-k by scanning every row of the version (no index): exact, slower.

        It orders by an expression no index matches (distance + 0), so it is exact
        whatever the planner or a cached plan would pick; turning index scans off
        with ``SET LOCAL`` was not enough (a plan cached on the pooled connection
        ignores later settings, and the two searches shared plans that way).
        """
        return self._search(version, queries, k, [], exact=True)

    def _search(
        self, version: str, queries: np.ndarray, k: int, settings: Sequence[str], *, exact: bool
    ) -> SearchResult:
        dim = self.dim(version)
        queries = np.atleast_2d(queries)
        if not dim:
            return [[] for _ in range(len(queries))], np.empty((len(queries), 0), np.float32)
        distance = f"embedding::vector({dim}) <=> CAST(:q AS vector({dim}))"
        order = f"({distance}) + 0" if exact else distance
        sql = text(
            f"SELECT doc_id, 1 - ({distance}) AS score FROM embedding_pgvectors WHERE model_version = :v "
            f"ORDER BY {order} LIMIT {int(k)}"
        )
        out_ids, out_scores = [], np.zeros((len(queries), k), np.float32)
        with self.store.engine.begin() as conn:  # SET LOCAL lasts for this transaction only
            for setting in settings:
                conn.execute(text(setting))
            for row, q in enumerate(queries):
                rows = conn.execute(sql, {"q": literal(q), "v": version}).all()
                out_ids.append([r.doc_id for r in rows])
                out_scores[row, : len(rows)] = [r.score for r in rows]
        return out_ids, out_scores[:, : min(k, max((len(r) for r in out_ids), default=0))]

    def drop(self, conn: Connection, version: str) -> int:
        conn.execute(text(f'DROP INDEX IF EXISTS "{index_name(version)}"'))
        self._dims.pop(version, None)
        return int(conn.execute(delete(pgvectors).where(pgvectors.c.model_version == version)).rowcount or 0)


def _quote(value: str) -> str:
    return value.replace("'", "''")
