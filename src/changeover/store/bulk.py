"""Many ``responses`` rows written at once, inside the caller's transaction: COPY on PostgreSQL, executemany on SQLite.

Rows come from ``store.ingest.stored_rows`` (JSON columns already encoded) and are written in chunks,
so memory does not grow with the file. A row whose fingerprint is stored already, or that repeats an
earlier row of the same file, is not added (the first one is kept), as ``responses._insert_new`` does.

PostgreSQL: each chunk is one ``COPY responses FROM STDIN`` (psycopg 3, text format) in a savepoint;
when the COPY meets a stored fingerprint (a unique violation) the savepoint is rolled back and the
chunk is copied again without the stored rows -- so importing new records pays no look-up, and a
re-import pays one indexed look-up per chunk. The COPY runs in a thread of its own while the next
chunk is parsed, so the server's work overlaps Python's. SQLite: ``INSERT OR IGNORE`` by executemany
of the encoded rows on the raw connection (no per-row JSON serialisation by the driver).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from changeover.store.ingest import StoredRow
from changeover.store.schema import responses

CHUNK = 20_000
_COLUMNS = "item, model, segment, signals, labels, payload, fingerprint, source, imported_at"
COPY_SQL = f"COPY responses ({_COLUMNS}) FROM STDIN"


def _text(value: str) -> str:
    """A value in COPY's text format (backslash, tab, newline and carriage return escaped)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _chunks(rows: Iterable[StoredRow], size: int) -> Iterator[list[StoredRow]]:
    chunk: list[StoredRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_rows(conn: Connection, rows: Iterable[StoredRow], source: str | None, at: datetime) -> tuple[int, int]:
    """Write ``rows`` not stored yet, in ``conn``'s transaction; returns (rows read, rows added).

    An exception from ``rows`` (a bad line of the file) stops the writing and propagates: the caller's
    transaction then rolls everything back."""
    if conn.dialect.name == "postgresql":
        return _copy(conn, rows, source, at)
    return _executemany(conn, rows, source, at)


# --------------------------------------------------------------------------- SQLite


def _executemany(conn: Connection, rows: Iterable[StoredRow], source: str | None, at: datetime) -> tuple[int, int]:
    stamp = responses.c.imported_at.type.bind_processor(conn.dialect)
    when = stamp(at) if stamp else at
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cur = raw.cursor()
    sql = f"INSERT OR IGNORE INTO responses ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    read = added = 0
    for chunk in _chunks(rows, CHUNK):
        read += len(chunk)
        cur.executemany(
            sql,
            [(r.item, r.model, r.segment, r.signals, r.labels, r.payload, r.fingerprint, source, when) for r in chunk],
        )
        added += cur.rowcount
    return read, added


# --------------------------------------------------------------------------- PostgreSQL


class _Copier(threading.Thread):
    """Copies the chunks it is handed, one savepoint each, on the raw psycopg connection."""

    def __init__(self, raw: Any, suffix: str) -> None:
        super().__init__(name="changeover-copy", daemon=True)
        self.raw, self.suffix = raw, suffix
        self.jobs: queue.Queue[list[StoredRow] | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.added = 0
        self.stopped = False

    def run(self) -> None:
        while (chunk := self.jobs.get()) is not None:
            if self.error is not None or self.stopped:
                continue  # drain: the caller stops handing chunks and rolls back
            try:
                self.added += self.load(chunk)
            except BaseException as exc:  # handed to the caller's thread
                self.error = exc

    def lines(self, chunk: list[StoredRow]) -> str:
        suffix = self.suffix
        return "".join(
            f"{_text(r.item)}\t{_text(r.model)}\t{r.segment.replace(chr(92), chr(92) * 2)}\t"
            f"{r.signals.replace(chr(92), chr(92) * 2)}\t{r.labels.replace(chr(92), chr(92) * 2)}\t"
            f"{r.payload.replace(chr(92), chr(92) * 2)}\t{r.fingerprint}{suffix}"
            for r in chunk
        )

    def copy(self, cur: Any, chunk: list[StoredRow]) -> None:
        with cur.copy(COPY_SQL) as copy:
            copy.write(self.lines(chunk))

    def load(self, chunk: list[StoredRow]) -> int:
        import psycopg

        seen: set[str] = set()
        unique = [r for r in chunk if not (r.fingerprint in seen or seen.add(r.fingerprint))]  # type: ignore[func-returns-value]
        with self.raw.cursor() as cur:
            cur.execute("SAVEPOINT co_copy")
            try:
                self.copy(cur, unique)
            except psycopg.errors.UniqueViolation:  # some of the chunk is stored already
                cur.execute("ROLLBACK TO SAVEPOINT co_copy")
                cur.execute(
                    "SELECT fingerprint FROM responses WHERE fingerprint = ANY(%s)", ([r.fingerprint for r in unique],)
                )
                stored = {fp for (fp,) in cur.fetchall()}
                unique = [r for r in unique if r.fingerprint not in stored]
                if unique:
                    self.copy(cur, unique)
            cur.execute("RELEASE SAVEPOINT co_copy")
        return len(unique)


def _copy(conn: Connection, rows: Iterable[StoredRow], source: str | None, at: datetime) -> tuple[int, int]:
    import psycopg

    raw = conn.connection.dbapi_connection
    assert raw is not None
    suffix = "\t" + ("\\N" if source is None else _text(source)) + "\t" + at.isoformat() + "\n"
    copier = _Copier(raw, suffix)
    copier.start()
    read = 0
    try:
        for chunk in _chunks(rows, CHUNK):
            if copier.error is not None:
                break
            read += len(chunk)
            copier.jobs.put(chunk)
    except BaseException:
        copier.stopped = True
        raise
    finally:
        copier.jobs.put(None)
        copier.join()
    if isinstance(copier.error, psycopg.Error):  # as SQLAlchemy would have raised it (its class, .orig)
        raise DBAPIError.instance(COPY_SQL, None, copier.error, psycopg.Error) from copier.error
    if copier.error is not None:
        raise copier.error
    return read, copier.added
