"""Many ``responses`` rows written at once, inside the caller's transaction: COPY on PostgreSQL, executemany on SQLite.

Rows come from ``store.ingest.stored_batches`` (JSON columns already encoded, by column) and are written
in chunks of at most ``CHUNK`` rows, so memory does not grow with the file. A row whose fingerprint is
stored already, or that repeats an earlier row of the same file, is not added (the first one is kept),
as ``responses._insert_new`` does; writers take turns on the same advisory lock as it does.

PostgreSQL, two ways, chosen per import (``_plan``):

- *into the indexes* (the table holds at least half as many rows as the file brings, or the file
  brings fewer than ``REBUILD_MIN``): each chunk is one ``COPY responses FROM STDIN`` (text format) in a
  savepoint; when the COPY meets a stored fingerprint (a unique violation) the savepoint is rolled back
  and the chunk is copied again without the stored rows, and from then on each chunk's stored rows are
  looked up before its COPY -- importing new records pays no look-up, a file overlapping the store one
  indexed look-up per chunk.
- *indexes built after the rows* (a big file into an empty or smaller table): each row written into the
  indexes costs index maintenance -- half the server's time at 2x10^5 rows, and more as the random
  fingerprint index outgrows the buffers (after each checkpoint every page it first touches goes whole
  into the WAL). So the table is locked (``NOWAIT``: if anyone else is using it, the import goes the
  first way instead of waiting), its indexes (primary key, unique constraints, the others) are dropped,
  all the rows go in by one COPY, and they are built again (a sort each) before the transaction commits.
  A repeated fingerprint makes rebuilding the unique constraint fail; then of each group of rows with the
  same key all but the lowest id (the stored row, or the file's first) are deleted and it is built
  again. All of it is one transaction: an error leaves the table, its rows and its indexes as they were;
  other sessions wait for the lock until the commit (readers too).

Either way the COPY runs in a thread of its own while the next chunk is parsed, so the server's work
overlaps Python's, and a value the server refuses (a ``\\u0000`` in a JSON string, a NUL in an item) is
a ``RecordsError`` naming the file's line. SQLite: ``INSERT OR IGNORE`` by executemany of the encoded
rows on the raw connection (no per-row JSON serialisation by the driver).
"""

from __future__ import annotations

import bisect
import queue
import re
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from changeover.errors import RecordsError, where
from changeover.store.ingest import Rows
from changeover.store.schema import responses

CHUNK = 20_000
BUILD_MEMORY = 256 * 2**20  # maintenance_work_mem for the index builds of a big import (bytes)
REBUILD_MIN = 50_000  # rows a file must bring for the indexes to be rebuilt rather than written into
_COLUMNS = "item, model, segment, signals, labels, payload, fingerprint, source, imported_at"
COPY_SQL = f"COPY responses ({_COLUMNS}) FROM STDIN"
# every writer of ``responses`` on PostgreSQL (COPY here, ``responses._insert_new``) takes it: they take turns
WRITERS_LOCK = "SELECT pg_advisory_xact_lock(hashtext('changeover.responses'))"
_FIELDS = {  # a column of the COPY, in the words of the file's fields
    "item": "its item",
    "model": "its model",
    "segment": "its segment",
    "signals": "its signals",
    "labels": "its labels",
    "payload": "its prompt, response, reference, error or extra fields",
}
_COPY_LINE = re.compile(r"COPY responses, line (\d+)(?:, column (\w+))?")


def _text(value: str) -> str:
    """A value in COPY's text format (backslash, tab, newline and carriage return escaped)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _texts(values: list[str]) -> list[str]:
    """``_text`` of each value; the list itself when none needs escaping (the usual case: one scan)."""
    joined = "".join(values)
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        return [_text(v) for v in values]
    return values


def _json_texts(values: list[str]) -> list[str]:
    """JSON text in COPY's text format: the encoder escapes control characters, so only backslashes double."""
    if "\\" in "".join(values):
        return [v.replace("\\", "\\\\") for v in values]
    return values


def _chunks(batches: Iterable[Rows], size: int) -> Iterator[Rows]:
    for batch in batches:
        if len(batch) <= size:
            yield batch
        else:
            for start in range(0, len(batch), size):
                yield batch.part(start, start + size)


def write_rows(
    conn: Connection,
    batches: Iterable[Rows],
    source: str | None,
    at: datetime,
    expected: Callable[[], int] = lambda: 0,
) -> tuple[int, int]:
    """Write the rows of ``batches`` not stored yet, in ``conn``'s transaction; returns (rows read, rows added).

    ``expected()``: how many rows the file holds at most (0: unknown), which picks PostgreSQL's way of
    writing; asked on PostgreSQL only (counting a text file's lines reads it once more).
    An exception from ``batches`` (a bad line of the file) stops the writing and propagates: the caller's
    transaction then rolls everything back."""
    if conn.dialect.name == "postgresql":
        return _copy(conn, batches, source, at, expected())
    return _executemany(conn, batches, source, at)


# --------------------------------------------------------------------------- SQLite


def _executemany(conn: Connection, batches: Iterable[Rows], source: str | None, at: datetime) -> tuple[int, int]:
    stamp = responses.c.imported_at.type.bind_processor(conn.dialect)
    when = stamp(at) if stamp else at
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cur = raw.cursor()
    sql = f"INSERT OR IGNORE INTO responses ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    read = added = 0
    for chunk in _chunks(batches, CHUNK):
        read += len(chunk)
        n = len(chunk)
        cur.executemany(sql, list(zip(*chunk.columns()[1:], [source] * n, [when] * n, strict=True)))
        added += cur.rowcount
    return read, added


# --------------------------------------------------------------------------- PostgreSQL


def _lines(chunk: Rows, suffix: str) -> str:
    """The chunk as COPY text, each line ending with ``suffix`` (source and time)."""
    segment, signals, labels, payload = (
        _json_texts(c) for c in (chunk.segment, chunk.signals, chunk.labels, chunk.payload)
    )
    return "".join(
        [
            f"{i}\t{m}\t{s}\t{g}\t{lb}\t{p}\t{f}{suffix}"
            for i, m, s, g, lb, p, f in zip(
                _texts(chunk.item),
                _texts(chunk.model),
                segment,
                signals,
                labels,
                payload,
                chunk.fingerprint,
                strict=True,
            )
        ]
    )


class _Copier(threading.Thread):
    """Copies the chunks it is handed on the raw psycopg connection: one COPY and savepoint each (``whole``
    False), or all of them as one COPY (``whole``: the table has no unique index to meet while it runs)."""

    def __init__(self, raw: Any, suffix: str, source: str | None, whole: bool) -> None:
        super().__init__(name="changeover-copy", daemon=True)
        self.raw, self.suffix, self.source, self.whole = raw, suffix, source, whole
        self.jobs: queue.Queue[Rows | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.added = 0
        self.stopped = False
        self.done = False  # the caller's end of the chunks (None) was taken
        self.overlaps = False  # a chunk met stored rows: the later ones are looked up before their COPY
        self.sent = _Lines()  # the file line of each row of the current COPY, for its error messages

    def run(self) -> None:
        try:
            if self.whole:
                with self.raw.cursor() as cur:
                    self.sent = _Lines()
                    with cur.copy(COPY_SQL) as copy:
                        while (chunk := self.next()) is not None:
                            self.sent.add(chunk.line)
                            copy.write(_lines(chunk, self.suffix))
                            self.added += len(chunk)
            else:
                while (chunk := self.next()) is not None:
                    self.added += self.load(chunk)
        except BaseException as exc:  # handed to the caller's thread
            self.error = self.located(exc)
        while not self.done:  # drain: the caller stops handing chunks and rolls back
            self.done = self.jobs.get() is None

    def next(self) -> Rows | None:
        chunk = self.jobs.get()
        self.done = chunk is None
        if chunk is not None and self.stopped:
            raise _Stopped
        return chunk

    def located(self, exc: BaseException) -> BaseException:
        """A value the server refused, as a ``RecordsError`` naming the file's line (COPY counts its own lines)."""
        import psycopg

        if not isinstance(exc, psycopg.Error) or exc.diag.context is None:
            return exc
        found = _COPY_LINE.search(exc.diag.context)
        line = self.sent.line(int(found.group(1))) if found is not None else None
        if found is None or line is None:
            return exc
        column = _FIELDS.get(found.group(2) or "", "")
        reason = exc.diag.message_primary or str(exc)
        if exc.diag.message_detail:
            reason += f" ({exc.diag.message_detail.rstrip('.')})"
        return RecordsError(
            f"{where(self.source or 'records', line)}: the store refused {column or 'this row'}: {reason}; "
            "fix the line and import again (nothing of the file was stored)"
        )

    def copy(self, cur: Any, chunk: Rows) -> None:
        self.sent = _Lines()
        self.sent.add(chunk.line)
        with cur.copy(COPY_SQL) as copy:
            copy.write(_lines(chunk, self.suffix))

    def load(self, chunk: Rows) -> int:
        import psycopg

        fingerprints = chunk.fingerprint
        if len(set(fingerprints)) < len(fingerprints):  # a row repeats an earlier one of the chunk
            seen: set[str] = set()
            chunk = chunk.take([i for i, fp in enumerate(fingerprints) if not (fp in seen or seen.add(fp))])  # type: ignore[func-returns-value]
        with self.raw.cursor() as cur:
            if self.overlaps:  # an earlier chunk met stored rows: this one probably does too, look first
                chunk = self.new(cur, chunk)
            cur.execute("SAVEPOINT co_copy")
            try:
                if len(chunk):
                    self.copy(cur, chunk)
            except psycopg.errors.UniqueViolation:  # some of the chunk is stored already
                cur.execute("ROLLBACK TO SAVEPOINT co_copy")
                self.overlaps = True
                chunk = self.new(cur, chunk)
                if len(chunk):
                    self.copy(cur, chunk)
            cur.execute("RELEASE SAVEPOINT co_copy")
        return len(chunk)

    @staticmethod
    def new(cur: Any, chunk: Rows) -> Rows:
        """The rows of ``chunk`` whose fingerprint is not stored (one look-up of them all, by the unique index:
        for 20,000 keys the planner would scan the whole table, 2-3x slower on 10^6 stored rows)."""
        cur.execute("SELECT current_setting('enable_seqscan'), set_config('enable_seqscan', 'off', true)")
        (before, _) = cur.fetchone()
        cur.execute("SELECT fingerprint FROM responses WHERE fingerprint = ANY(%s)", (chunk.fingerprint,))
        stored = {fp for (fp,) in cur.fetchall()}
        cur.execute("SELECT set_config('enable_seqscan', %s, true)", (before,))
        return chunk.take([i for i, fp in enumerate(chunk.fingerprint) if fp not in stored]) if stored else chunk


class _Lines:
    """The file line of each row sent by one COPY, kept as runs of consecutive lines (a few numbers for a
    whole file, not one per row)."""

    def __init__(self) -> None:
        self.rows = array("q")  # the COPY's row number (from 1) where each run starts
        self.lines = array("q")  # the file line of that row
        self.count = 0

    def add(self, lines: list[int]) -> None:
        n = len(lines)
        if n and lines[-1] - lines[0] == n - 1:  # one run (a Parquet batch, JSONL without blank lines)
            self._run(self.count + 1, lines[0])
        else:
            for k, line in enumerate(lines):
                if k == 0 or line != lines[k - 1] + 1:
                    self._run(self.count + k + 1, line)
        self.count += n

    def _run(self, row: int, line: int) -> None:
        if self.rows and line - self.lines[-1] == row - self.rows[-1]:
            return  # it continues the last run
        self.rows.append(row)
        self.lines.append(line)

    def line(self, row: int) -> int | None:
        """The file line of the COPY's row ``row`` (from 1), None when the COPY sent no such row."""
        if not 0 < row <= self.count:
            return None
        k = bisect.bisect_right(self.rows, row) - 1
        return self.lines[k] + row - self.rows[k]


class _Stopped(Exception):
    """The caller stopped handing chunks (a bad line of the file): the copy ends, the transaction rolls back."""


class _Indexes:
    """The indexes of ``responses`` as dropped and built again (``_plan``: when no foreign key refers to the
    table): the primary key, the unique constraints, the other indexes."""

    def __init__(self, cur: Any) -> None:
        cur.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'responses'::regclass AND contype IN ('p', 'u') ORDER BY contype = 'u', conname"
        )
        self.constraints: list[tuple[str, str]] = cur.fetchall()
        cur.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'responses'::regclass "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) ORDER BY c.relname"
        )
        self.plain: list[tuple[str, str]] = cur.fetchall()

    def drop(self, cur: Any) -> None:
        for name, _ in self.constraints:
            cur.execute(f'ALTER TABLE responses DROP CONSTRAINT "{name}"')
        for name, _ in self.plain:
            cur.execute(f'DROP INDEX "{name}"')

    def build(self, cur: Any) -> int:
        """Build the indexes again; returns how many repeated rows were deleted to make the unique ones hold
        (of each group of rows with the same key, all but the one of the lowest id)."""
        import psycopg

        deleted = 0
        for name, definition in self.constraints:  # the primary key first: the DELETE below finds rows by id
            add = f'ALTER TABLE responses ADD CONSTRAINT "{name}" {definition}'
            cur.execute("SAVEPOINT co_unique")
            try:
                cur.execute(add)
            except psycopg.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT co_unique")
                columns = definition[definition.index("(") + 1 : definition.rindex(")")]
                cur.execute(
                    f"DELETE FROM responses WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
                    f"(PARTITION BY {columns} ORDER BY id) AS n FROM responses) AS r WHERE n > 1)"
                )
                deleted += cur.rowcount
                cur.execute(add)
            cur.execute("RELEASE SAVEPOINT co_unique")
        for _, definition in self.plain:
            cur.execute(definition)
        return deleted


def _plan(cur: Any, expected: int) -> _Indexes | None:
    """The indexes to drop and build again when this import is better written that way, else None."""
    import psycopg

    if expected < REBUILD_MIN:
        return None
    cur.execute(
        "SELECT pg_has_role(relowner, 'USAGE') AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint WHERE confrelid = 'responses'::regclass) "
        "FROM pg_class WHERE oid = 'responses'::regclass"
    )
    if not cur.fetchone()[0]:  # only the table's owner may drop its indexes; none a foreign key refers to
        return None
    cur.execute("SELECT count(*) FROM (SELECT 1 FROM responses LIMIT %s) AS r", (expected // 2,))
    if cur.fetchone()[0] >= expected // 2:  # the table holds half as many rows as the file brings, or more
        return None
    cur.execute("SAVEPOINT co_lock")
    try:
        cur.execute("LOCK TABLE responses IN ACCESS EXCLUSIVE MODE NOWAIT")
    except psycopg.errors.LockNotAvailable:  # someone is reading or writing it: write into the indexes
        cur.execute("ROLLBACK TO SAVEPOINT co_lock")
        return None
    cur.execute("RELEASE SAVEPOINT co_lock")
    indexes = _Indexes(cur)
    indexes.drop(cur)
    # the index builds sort in memory rather than in temporary files (the default is 64 MB); never lowered
    cur.execute(f"SELECT pg_size_bytes(current_setting('maintenance_work_mem')) < {BUILD_MEMORY}")
    if cur.fetchone()[0]:
        cur.execute(f"SET LOCAL maintenance_work_mem = {BUILD_MEMORY // 1024}")  # in kB
    return indexes


def _copy(
    conn: Connection, batches: Iterable[Rows], source: str | None, at: datetime, expected: int
) -> tuple[int, int]:
    import psycopg

    raw: Any = conn.connection.dbapi_connection  # psycopg's Connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute(WRITERS_LOCK)
        indexes = _plan(cur, expected)
    suffix = "\t" + ("\\N" if source is None else _text(source)) + "\t" + at.isoformat() + "\n"
    copier = _Copier(raw, suffix, source, whole=indexes is not None)
    copier.start()
    read = 0
    try:
        for chunk in _chunks(batches, CHUNK):
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
    added = copier.added
    if indexes is not None:
        with raw.cursor() as cur:
            added -= indexes.build(cur)
    return read, added
