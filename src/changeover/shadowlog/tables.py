"""The gateway's own tables: the shadow log (one row per model answer) and the contamination ledger.

``shadow_log`` holds every answer the gateway saw: the one served to the user
(``role = served``) and each mirrored candidate answer (``role = mirror``), with
the redacted request context, latency, tokens, cost, errors and refusals.
``contamination_ledger`` holds one row per request a candidate answered for a
user, so after a rollback a team knows whose conversations it touched.
"""

from __future__ import annotations

import weakref

from sqlalchemy import JSON, Boolean, Column, DateTime, Float, Index, Integer, String, Table, Text, inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from changeover.store import Store
from changeover.store.schema import ID, metadata

shadow_log = Table(
    "shadow_log",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("model", String(256), nullable=False),
    Column("role", String(8), nullable=False),  # served | mirror
    Column("request_type", String(128), nullable=False),
    Column("subject", String(256), nullable=True),  # the sticky key (user / session id)
    Column("stage", Integer, nullable=False),
    Column("weight", Integer, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("request", JSON, nullable=True),  # messages, tools, parameters (redacted)
    Column("response_text", Text, nullable=True),
    Column("status", Integer, nullable=True),  # upstream HTTP status; NULL = no answer
    Column("error", Text, nullable=True),  # timeout | connect | http_500 | malformed ...
    Column("latency_ms", Float, nullable=True),
    Column("ttft_ms", Float, nullable=True),  # streaming: time to first chunk
    Column("tokens_in", Integer, nullable=True),
    Column("tokens_out", Integer, nullable=True),
    # the upstream gave no usage (e.g. a stream without its usage chunk): the counts are characters / 4
    Column("tokens_estimated", Boolean, nullable=True),
    Column("cost_usd", Float, nullable=True),
    Column("refusal", Boolean, nullable=True),
    Column("finish_reason", String(32), nullable=True),
    Column("prompt_version", String(256), nullable=True),  # the registry variant sent (prompt@variant:vN)
    # the upstream announced a deprecation on this answer: {source, deprecated_at, sunset, link} (NULL: none)
    Column("deprecation", JSON, nullable=True),
    Index("ix_shadow_log_at", "at"),
    # one row per answer: a batch retried after a lost commit acknowledgement inserts nothing twice
    Index("uq_shadow_log_answer", "request_id", "model", "role", unique=True),
)

contamination_ledger = Table(
    "contamination_ledger",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("subject", String(256), nullable=True),
    Column("candidate", String(256), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("stage", Integer, nullable=False),
    Column("weight", Integer, nullable=False),
    Index("ix_contamination_subject", "subject"),
    Index("uq_contamination_request", "request_id", "candidate", unique=True),
)

GATEWAY_TABLES = (shadow_log, contamination_ledger)

# columns added to the shadow log after its first release: a store created before gets them on start-up
ADDED_COLUMNS = {
    shadow_log.name: [
        ("tokens_estimated", "BOOLEAN"),
        ("prompt_version", "VARCHAR(256)"),
        ("deprecation", "JSON"),
    ]
}

_upgraded: weakref.WeakSet[Store] = weakref.WeakSet()


def ensure_tables(store: Store) -> None:
    store.ensure(*GATEWAY_TABLES)  # safe when replicas start together (Store.ensure serialises)
    if store not in _upgraded:
        _add_missing_columns(store)
        _upgraded.add(store)


def _add_missing_columns(store: Store) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for each column a store created by an older version lacks
    (nullable, so old rows read as unknown); a replica adding it at the same moment is harmless."""
    for table, columns in ADDED_COLUMNS.items():
        have = {c["name"] for c in inspect(store.engine).get_columns(table)}
        for name, sql_type in columns:
            if name in have:
                continue
            exists = " IF NOT EXISTS" if store.dialect == "postgresql" else ""
            try:
                with store.engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN{exists} {name} {sql_type}"))
            except (OperationalError, ProgrammingError) as exc:
                if "duplicate column" not in str(exc).lower():  # SQLite: another process added it first
                    raise
