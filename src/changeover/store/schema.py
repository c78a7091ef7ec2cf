"""The core tables: imported responses, human labels, import log, events, flags.

Feature packages add their own tables to ``metadata`` in their own modules.
JSON columns hold the open-ended parts (segment, signals, optional fields).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# BigInteger that is still SQLite's rowid alias
ID = BigInteger().with_variant(Integer, "sqlite")
# a response's JSON columns: jsonb on PostgreSQL, parsed once when stored, so the assessment's GROUP BY
# (assessment.pushdown) reads fields without parsing text per row; a store created with json columns
# (before) works the same, the pushdown casts them
DOC = JSON().with_variant(JSONB(), "postgresql")
# a content hash, compared byte for byte: collation "C" on PostgreSQL (under the database's locale every
# comparison in the unique index is a strcoll: building it for 10^6 imported rows took 3.5x the CPU)
FINGERPRINT = String(64).with_variant(String(64, collation="C"), "postgresql")

responses = Table(
    "responses",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("item", String(512), nullable=False),
    Column("model", String(256), nullable=False),
    Column("segment", DOC, nullable=False),
    Column("signals", DOC, nullable=False),
    Column("labels", DOC, nullable=False),
    Column("payload", DOC, nullable=False),  # prompt, response, latency, cost, extra ...
    Column("fingerprint", FINGERPRINT, nullable=False),  # sha256 of the record's canonical JSON
    Column("source", Text, nullable=True),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("fingerprint", name="uq_responses_fingerprint"),
    Index("ix_responses_item_model", "item", "model"),
)

labels = Table(
    "labels",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("item", String(512), nullable=False),
    Column("model", String(256), nullable=False),
    Column("dimension", String(128), nullable=False),
    Column("value", Integer, nullable=True),  # 1 acceptable, 0 not, NULL = skipped/flagged
    Column("annotator", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("client_id", String(128), nullable=True),  # idempotency key from the client
    Column("supersedes", BigInteger, nullable=True),  # id of the label this one corrects
    Column("response_hash", String(64), nullable=True),  # the exact response text judged
    Column("status", String(16), nullable=False, default="label"),  # label | skip | flag
    Column("source", String(32), nullable=False, default="app"),
    Column("note", Text, nullable=True),  # why it was flagged, or a comment
    UniqueConstraint("client_id", name="uq_labels_client_id"),
    Index("ix_labels_item_model", "item", "model"),
    Index("ix_labels_annotator", "annotator"),
)

imports = Table(
    "imports",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("path", Text, nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("added", Integer, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(64), nullable=False),  # e.g. flag.set, stage.advance, rollback, trigger.evaluated
    Column("subject", String(256), nullable=False),  # the flag / migration / job it is about
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=True),
    Column("payload", JSON, nullable=False),
    Index("ix_events_subject", "subject", "id"),
)

flags = Table(
    "flags",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(128), nullable=False),
)

CORE_TABLES = (responses, labels, imports, events, flags)
