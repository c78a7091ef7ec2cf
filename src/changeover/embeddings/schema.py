"""The embedding migration's tables, on the store's shared ``metadata``.

Vectors live in a side table keyed by (model version, document id): a new
model's vectors are added as new rows beside the old ones, never written into
the old rows, so production reads of the old index are untouched until the
switch. (The pgvector backend's table is in ``pgvector.py``.)
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Insert,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import postgresql, sqlite

from changeover.store.schema import ID, metadata

VERSION = String(256)
DOC_ID = String(512)

vectors = Table(
    "embedding_vectors",
    metadata,
    Column("model_version", VERSION, primary_key=True),
    Column("doc_id", DOC_ID, primary_key=True),
    Column("vector", LargeBinary, nullable=False),  # little-endian float32, unit length
)

jobs = Table(
    "embedding_jobs",
    metadata,
    Column("model_version", VERSION, primary_key=True),  # one (resumable) job per target version
    Column("state", String(16), nullable=False),  # running | done | incomplete
    Column("total", Integer, nullable=False),
    Column("done", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("runs", Integer, nullable=False),
    Column("source", Text, nullable=True),  # the corpus it embeds
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

failures = Table(
    "embedding_failures",
    metadata,
    Column("model_version", VERSION, primary_key=True),
    Column("doc_id", DOC_ID, primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

adapters = Table(
    "embedding_adapters",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("query_version", VERSION, nullable=False),  # model the queries come from (the new one)
    Column("index_version", VERSION, nullable=False),  # index they are mapped into (the old one)
    Column("form", String(32), nullable=False),  # procrustes | affine | lowrank
    Column("rank", Integer, nullable=True),
    Column("dim_in", Integer, nullable=False),
    Column("dim_out", Integer, nullable=False),
    Column("weights", LargeBinary, nullable=False),  # float32 [dim_in, dim_out]
    Column("bias", LargeBinary, nullable=False),  # float32 [dim_out]
    Column("metrics", JSON, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
)

leases = Table(
    "embedding_leases",
    metadata,
    Column("model_version", VERSION, primary_key=True),  # one running job per target version
    Column("owner", String(256), nullable=False),  # host:pid:random of the run holding it
    Column("acquired_at", Float, nullable=False),  # epoch seconds
    Column("expires_at", Float, nullable=False),  # renewed by the run's heartbeat; past it, the job is interrupted
)

TABLES = (vectors, jobs, failures, adapters, leases)


def insert_ignore(conn: Connection, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` on either dialect: a row already there is kept, no error."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()
