"""The labelling app's own tables: annotator accounts, leases, and settings.

Labels themselves go to the core ``labels`` table. ``labeling_leases`` has one
row per claimed slot of a response: the unique (item, model, slot) constraint
is what guarantees that two annotators never hold the same single-label
response at the same time, even with several server processes on one database.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, String, Table, UniqueConstraint

from changeover.store import Store
from changeover.store.schema import metadata

annotators = Table(
    "labeling_annotators",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("token", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # annotator | admin
    Column("created_at", DateTime(timezone=True), nullable=False),
)

leases = Table(
    "labeling_leases",
    metadata,
    Column("item", String(512), nullable=False),
    Column("model", String(256), nullable=False),
    Column("slot", Integer, nullable=False),  # 0 .. needed-1
    Column("annotator", String(128), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("item", "model", "slot", name="uq_labeling_leases_slot"),
    UniqueConstraint("annotator", name="uq_labeling_leases_annotator"),  # one open response each
)

settings = Table(
    "labeling_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

TABLES = (annotators, leases, settings)


def ensure_tables(store: Store) -> None:
    """Create the labelling tables if they do not exist yet."""
    store.ensure(*TABLES)
