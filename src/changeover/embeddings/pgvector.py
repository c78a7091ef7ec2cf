"""PostgreSQL + pgvector backend: a side table (model version, document id, vector) with
one partial HNSW index per model version, built concurrently once the version is embedded.

The HNSW parameters come from the spec (``embeddings.hnsw``): ``m`` and
``ef_construction`` at build time (in a build session with ``maintenance_work_mem``
= ``build_memory`` and ``max_parallel_maintenance_workers`` = ``build_workers``;
pgvector >= 0.6 builds in parallel), ``ef_search`` set with ``SET LOCAL`` in
each search's own transaction (so a pooled connection never carries it to
another caller). ``copy_rows`` bulk-loads a new version with binary ``COPY``.
``exact_search`` scans the version's rows without the index: the baseline that
``compare`` measures the index's recall against.

Why a side table and not a second column: backfilling a second ``vector``
column in place rewrites every row and re-inserts it into the existing index
(measured ~70x slower than inserting new rows). The column has no fixed
dimension, so two models of different sizes share it; each partial index casts
to its version's dimension, and searches use the same expression so the
planner picks that index.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

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

log = logging.getLogger("changeover.embeddings")
PARALLEL_BUILD_SINCE = (0, 6, 0)  # pgvector's first release with parallel HNSW builds
BUILD_LOCK = 0x63686F76_686E7377  # advisory lock key ("chov" "hnsw"): one HNSW build per database at a time


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


@dataclass
class BuildReport:
    """One HNSW build: its parameters, wall time, and what PostgreSQL said while building
    (pgvector warns when the graph outgrows ``maintenance_work_mem``: the rest builds on disk)."""

    version: str
    m: int
    ef_construction: int
    build_memory: str
    workers: int  # max_parallel_maintenance_workers asked for (0 when pgvector cannot build in parallel)
    seconds: float = 0.0
    notices: list[str] = field(default_factory=list)

    @property
    def fits_in_memory(self) -> bool:
        return not any("no longer fits into maintenance_work_mem" in n for n in self.notices)


def _version_tuple(text_version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text_version.split(".")[:3] if p.isdigit())


def copy_payload(version: str, ids: Sequence[str], matrix: np.ndarray) -> bytes:
    """Rows (version, doc id, vector) in PostgreSQL's binary COPY format; a vector travels as
    pgvector's binary form (int16 dimension, int16 unused, big-endian float4 values)."""
    matrix = np.ascontiguousarray(matrix, dtype=">f4")
    dim = matrix.shape[1] if matrix.ndim == 2 else 0
    v = version.encode()
    head = struct.pack(">hi", 3, len(v)) + v
    vec_head = struct.pack(">ihh", 4 + 4 * dim, dim, 0)
    parts = [b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)]
    for doc_id, row in zip(ids, matrix, strict=True):
        d = doc_id.encode()
        parts += [head, struct.pack(">i", len(d)), d, vec_head, row.tobytes()]
    parts.append(struct.pack(">h", -1))
    return b"".join(parts)


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
        self.last_build: BuildReport | None = None

    def add(self, conn: Connection, version: str, ids: Sequence[str], matrix: np.ndarray) -> None:
        if len(ids):
            self._dims[version] = int(matrix.shape[1])
            conn.execute(
                insert_ignore(conn, pgvectors),
                [{"model_version": version, "doc_id": i, "embedding": v} for i, v in zip(ids, matrix, strict=False)],
            )

    def copy_rows(self, conn: Connection, version: str, ids: Sequence[str], matrix: np.ndarray) -> None:
        """Bulk-load vectors with binary ``COPY`` in the caller's transaction (the benchmark loads
        1M this way). Unlike ``add`` it is not idempotent: a (version, document) already stored
        fails the whole batch with a unique violation, and the transaction rolls back."""
        if not len(ids):
            return
        self._dims[version] = int(matrix.shape[1])
        raw = conn.connection.driver_connection
        with (
            raw.cursor() as cur,
            cur.copy(
                "COPY embedding_pgvectors (model_version, doc_id, embedding) FROM STDIN WITH (FORMAT binary)"
            ) as copy,
        ):
            copy.write(copy_payload(version, ids, matrix))

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

    def pgvector_version(self) -> str:
        with self.store.engine.connect() as conn:
            return str(conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar())

    def finish(self, version: str) -> None:
        """Build this version's partial HNSW index (cosine), concurrently: reads go on meanwhile.

        The build session gets ``maintenance_work_mem`` = ``build_memory`` and, where pgvector
        builds in parallel (>= 0.6), ``max_parallel_maintenance_workers`` = ``build_workers``;
        the table is analyzed afterwards so the planner knows the new version's rows.
        ``last_build`` keeps the parameters, the time and PostgreSQL's notices; a graph that
        outgrew the memory is logged as a warning naming the setting to raise.
        """
        dim = self.dim(version)
        if not dim:
            return
        h = self.hnsw
        parallel = _version_tuple(self.pgvector_version()) >= PARALLEL_BUILD_SINCE
        report = BuildReport(version, h.m, h.ef_construction, h.build_memory, h.build_workers if parallel else 0)
        ddl = (
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{index_name(version)}" ON embedding_pgvectors '
            f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) "
            f"WITH (m = {int(h.m)}, ef_construction = {int(h.ef_construction)}) "
            f"WHERE model_version = '{_quote(version)}'"
        )
        settings = {"maintenance_work_mem": f"'{h.build_memory}'"}  # validated: digits and a unit
        if parallel:
            settings["max_parallel_maintenance_workers"] = str(int(h.build_workers))

        def on_notice(diag) -> None:
            report.notices.append(" ".join(p for p in (diag.message_primary, diag.message_detail) if p))

        with self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn, _build_lock(conn):
            if self._index_valid(conn, version) is False:  # a build that failed left its index INVALID
                conn.execute(text(f'DROP INDEX CONCURRENTLY IF EXISTS "{index_name(version)}"'))
                report.notices.append("dropped the invalid index a failed build had left, and built it again")
            raw = conn.connection.driver_connection
            raw.add_notice_handler(on_notice)
            for name, value in settings.items():
                conn.execute(text(f"SET {name} = {value}"))
            t0 = time.perf_counter()
            try:
                conn.execute(text(ddl))
            finally:
                report.seconds = time.perf_counter() - t0
                for name in settings:
                    conn.execute(text(f"RESET {name}"))
                raw.remove_notice_handler(on_notice)
            # fresh statistics: planned with none for the new version (rows just loaded, autovacuum
            # not yet by), a search took the primary key and sorted every row - exact, ~15x slower
            conn.execute(text("ANALYZE embedding_pgvectors"))
        self.last_build = report
        if not report.fits_in_memory:
            log.warning(
                "the HNSW graph of %s outgrew maintenance_work_mem (%s) and was finished on disk, far slower; "
                "raise embeddings.hnsw.build_memory for the next build",
                version,
                h.build_memory,
            )

    def index_options(self, version: str) -> dict[str, str]:
        """The built index's storage parameters as PostgreSQL keeps them (``m``, ``ef_construction``)."""
        with self.store.engine.connect() as conn:
            opts = conn.execute(
                text("SELECT reloptions FROM pg_class WHERE relname = :n AND relkind = 'i'"), {"n": index_name(version)}
            ).scalar()
        return dict(o.split("=", 1) for o in opts or [])

    @staticmethod
    def _index_valid(conn: Connection, version: str) -> bool | None:
        """True: the version's index serves; False: it exists but is INVALID (a failed build); None: none."""
        return conn.execute(
            text(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :n AND i.indrelid = 'embedding_pgvectors'::regclass"
            ),
            {"n": index_name(version)},
        ).scalar()

    def has_hnsw(self, version: str) -> bool:
        """Whether the version has a valid HNSW index (an INVALID one, left by a failed build, does not count)."""
        with self.store.engine.connect() as conn:
            return self._index_valid(conn, version) is True

    def approximate(self, version: str) -> bool:
        return self.has_hnsw(version)

    def ef_search(self, k: int) -> int:
        """The ``hnsw.ef_search`` a top-``k`` search runs with: the spec's, at least ``k``."""
        return max(int(self.hnsw.ef_search), int(k))

    def search_settings(self, version: str, k: int) -> dict[str, int]:
        """The version's index as built (``m``, ``ef_construction`` read back from PostgreSQL) and
        the ``ef_search`` its searches set; {} while it has no HNSW index (then search is exact)."""
        built = self.index_options(version)
        if not built:
            return {}
        return {name: int(value) for name, value in built.items()} | {"ef_search": self.ef_search(k)}

    def search(self, version: str, queries: np.ndarray, k: int) -> SearchResult:
        """Top-k through the version's HNSW index, ``ef_search`` = max(spec's, k) for this transaction.

        Each query is planned with its own values (``plan_cache_mode``): psycopg
        prepares a statement after 5 runs on a connection, and the cached generic
        plan chose a sequential scan at 100k vectors (exact, ~170 ms instead of a
        few). ``LIMIT`` is a literal for the same reason.
        """
        settings = [f"SET LOCAL hnsw.ef_search = {self.ef_search(k)}", "SET LOCAL plan_cache_mode = force_custom_plan"]
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


@contextmanager
def _build_lock(conn: Connection, poll: float = 0.2) -> Iterator[None]:
    """One HNSW build per database at a time: two ``CREATE INDEX CONCURRENTLY`` on the table
    wait for each other's transactions and PostgreSQL kills one as a deadlock (seen when two
    builds overlapped). A session advisory lock, tried in short transactions of its own (a
    waiting transaction would hold a snapshot the running build must wait for)."""
    waiting = False
    while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": BUILD_LOCK}).scalar():
        if not waiting:
            log.info("another HNSW build runs on this database; this one waits for it")
            waiting = True
        time.sleep(poll)
    try:
        yield
    finally:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": BUILD_LOCK})


def _quote(value: str) -> str:
    return value.replace("'", "''")
