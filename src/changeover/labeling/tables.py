"""The labelling app's own tables: annotator accounts, claims on responses, and settings.

Labels themselves go to the core ``labels`` table.

``labeling_accounts`` keeps a sha256 of each annotator's token, never the token
itself (a login link is shown once, when the token is made). ``revoked_at`` set
means the account cannot log in until its token is rotated.

``labeling_claims`` has one row per taken slot of a response (slots 0 ..
needed-1). An open claim (``open_by`` = the annotator, ``expires_at`` set) is
an annotator working on the response; a submitted verdict turns it into a done
claim (``open_by`` and ``expires_at`` NULL) that keeps the slot. The unique
(item, model, slot) key makes taking a slot a compare-and-set, so two
annotators never take the same slot, even from several server processes on one
database; unique ``open_by`` (NULLs are distinct) gives each annotator one open
response at a time.

``labeling_annotators`` is the old, clear-text token table: it is read once to
migrate its accounts (hashed) and then emptied; it is not created in new stores.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.dialects import postgresql, sqlite

from changeover.store import Store
from changeover.store.schema import metadata

accounts = Table(
    "labeling_accounts",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("token_hash", String(64), nullable=True, unique=True),  # sha256 hex; NULL: no valid token
    Column("role", String(16), nullable=False),  # annotator | admin
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("token_at", DateTime(timezone=True), nullable=False),  # when the current token was made
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_reason", Text, nullable=True),
)

claims = Table(
    "labeling_claims",
    metadata,
    Column("item", String(512), nullable=False),
    Column("model", String(256), nullable=False),
    Column("slot", Integer, nullable=False),  # 0 .. needed-1
    Column("annotator", String(128), nullable=False),
    Column("open_by", String(128), nullable=True),  # = annotator while open; NULL once the verdict is in
    Column("expires_at", DateTime(timezone=True), nullable=True),  # NULL once the verdict is in
    UniqueConstraint("item", "model", "slot", name="uq_labeling_claims_slot"),
    UniqueConstraint("item", "model", "annotator", name="uq_labeling_claims_annotator"),
    UniqueConstraint("open_by", name="uq_labeling_claims_open"),  # one open response per annotator
)

settings = Table(
    "labeling_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

legacy = MetaData()
legacy_annotators = Table(  # before tokens were hashed; only read to migrate
    "labeling_annotators",
    legacy,
    Column("name", String(128), primary_key=True),
    Column("token", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

TABLES = (accounts, claims, settings)


def ensure_tables(store: Store) -> None:
    """Create the labelling tables if they do not exist yet."""
    store.ensure(*TABLES)


def insert_once(conn: Connection, table: Table, **values: object) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL): True when the row went in, False
    when it clashed with a unique key (no error, so the caller's transaction goes on)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values).on_conflict_do_nothing().returning(literal_column("1"))
    return conn.execute(stmt).first() is not None
