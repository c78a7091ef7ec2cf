"""Open a store from a URL, a file path or ``CHANGEOVER_DB``; SQLite gets WAL."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import Engine, Table, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

from changeover.errors import StoreError
from changeover.store import schema

DEFAULT_DB = ".changeover/changeover.db"
_SCHEMA_LOCK = 0x6368616E  # advisory lock key for schema creation ("chan")


def _is_creation_race(exc: Exception) -> bool:
    msg = str(getattr(exc, "orig", exc)).lower()
    return "already exists" in msg or "pg_type_typname_nsp_index" in msg or "database is locked" in msg


def resolve_url(db: str | None = None) -> str:
    """``--db`` beats ``CHANGEOVER_DB`` beats the default SQLite file.

    A bare path becomes ``sqlite:///path``; ``postgresql://`` is given the
    psycopg 3 driver.
    """
    url = db or os.environ.get("CHANGEOVER_DB") or DEFAULT_DB
    if "://" not in url:
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class Store:
    """One database: an engine plus the guarantee that core tables exist."""

    def __init__(self, engine: Engine, url: str):
        self.engine = engine
        self.url = url

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def display_url(self) -> str:
        """The URL with any password hidden (for messages and logs)."""
        return self.engine.url.render_as_string(hide_password=True)

    def ensure(self, *tables: Table) -> None:
        """Create the given tables (a feature's own) if they do not exist.

        Safe when several processes start at once on a fresh database (two
        gateway replicas did race here: CREATE TABLE in both, one failing on
        PostgreSQL's pg_type unique index). PostgreSQL: serialised by a
        transaction-scoped advisory lock. SQLite: retried when the other
        process won.
        """
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    if self.dialect == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                    schema.metadata.create_all(conn, tables=list(tables), checkfirst=True)
                return
            except (OperationalError, IntegrityError, ProgrammingError) as exc:
                if attempt == 4 or not _is_creation_race(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))

    def has_table(self, name: str) -> bool:
        return inspect(self.engine).has_table(name)

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.dispose()


def open_store(db: str | None = None) -> Store:
    """Open (and initialise) the store named by ``db`` / ``CHANGEOVER_DB`` / the default."""
    url = resolve_url(db)
    try:
        engine = create_engine(url, future=True, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(
            f"--db {url!r}: cannot use this database URL ({exc}); "
            "use a file path, sqlite:///file.db or postgresql+psycopg://user@host/db"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    store = Store(engine, url)
    try:
        store.ensure(*schema.CORE_TABLES)
    except OperationalError as exc:
        raise StoreError(
            f"cannot open the store at {store.display_url}: {exc.orig}; "
            "check the URL, that the server runs, and your permissions"
        ) from None
    return store
