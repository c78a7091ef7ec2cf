"""Open a store from a URL, a file path or ``CHANGEOVER_DB``; SQLite gets WAL."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, Table, create_engine, event, inspect, text
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)

from changeover.errors import StoreError, StoreUnavailable
from changeover.store import schema

DEFAULT_DB = ".changeover/changeover.db"
_SCHEMA_LOCK = 0x6368616E  # advisory lock key for schema creation ("chan")


def _is_creation_race(exc: Exception) -> bool:
    msg = str(getattr(exc, "orig", exc)).lower()
    return "already exists" in msg or "pg_type_typname_nsp_index" in msg or "database is locked" in msg


# SQLSTATE classes of a store that is not there or not writable right now: connection
# exceptions, insufficient resources (disk full), operator intervention (shutdown, terminated
# backend), and a read-only transaction
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "25006")


def is_unavailable(exc: BaseException) -> bool:
    """Whether a database error means "the store cannot be reached or written now" (retry later),
    as opposed to a conflict, a constraint or a bug.

    SQLite reports a locked, read-only, full or vanished file as ``OperationalError``; psycopg
    reports a refused or cut connection, an administrator's shutdown and a full disk the same way.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    return sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


def cause(exc: BaseException) -> str:
    """The first line of the driver's message (no SQL, no parameters)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def busy_timeout_ms() -> int:
    """How long a SQLite writer waits for another's lock before the store counts as unavailable
    (``CHANGEOVER_SQLITE_BUSY_MS``, default 10 s)."""
    try:
        return max(0, int(os.environ.get("CHANGEOVER_SQLITE_BUSY_MS", "10000")))
    except ValueError:
        return 10000


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms()}")
    cur.close()


class Store:
    """One database: an engine plus the guarantee that core tables exist."""

    def __init__(self, engine: Engine, url: str):
        self.engine = engine
        self.url = url
        self._ensured: set[str] = set()  # tables this Store has created or found: not checked again

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
        process won. A table is checked once per ``Store`` (the rollout
        controller's analysis and the log readers call this on every run).
        """
        tables = tuple(t for t in tables if t.name not in self._ensured)
        if not tables:
            return
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    if self.dialect == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                    schema.metadata.create_all(conn, tables=list(tables), checkfirst=True)
                self._ensured.update(t.name for t in tables)
                return
            except (OperationalError, IntegrityError, ProgrammingError) as exc:
                if attempt == 4 or not _is_creation_race(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))

    @contextlib.contextmanager
    def reachable(
        self,
        doing: str,
        then: str = "nothing was changed - check that the database server runs, the file is writable "
        "and the disk has space, then retry",
    ) -> Iterator[None]:
        """Turn "the store is not there" errors inside the block into ``StoreUnavailable``
        naming what was being done and ``then`` (what it means for the user); every other
        error passes through unchanged."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            raise StoreUnavailable(
                f"{doing}: the store at {self.display_url} cannot be reached or written ({cause(exc)}); {then}"
            ) from exc

    def has_table(self, name: str) -> bool:
        return inspect(self.engine).has_table(name)

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.dispose()


def _connect_args(url: str) -> dict[str, int]:
    """PostgreSQL: a connection attempt gives up after 10 s (unless the URL says otherwise), so a store
    away fails a lease renewal or a budget read instead of hanging a thread on the TCP timeout."""
    return {"connect_timeout": 10} if url.startswith("postgresql") and "connect_timeout" not in url else {}


def open_store(db: str | None = None) -> Store:
    """Open (and initialise) the store named by ``db`` / ``CHANGEOVER_DB`` / the default."""
    url = resolve_url(db)
    try:
        engine = create_engine(url, future=True, pool_pre_ping=True, connect_args=_connect_args(url))
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
        raise StoreUnavailable(
            f"cannot open the store at {store.display_url}: {cause(exc)}; "
            "check the URL, that the server runs, and your permissions"
        ) from None
    return store
