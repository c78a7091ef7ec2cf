"""The batched background writer: the request path hands off an ``Exchange`` and never waits.

A bounded queue feeds one thread that turns exchanges into rows and inserts them
in batches (one transaction per batch). When the queue is full the exchange is
dropped and counted. The queue is a plain deque (``Backlog``): the request path
appends without a lock, and the thread wakes once per ``batch_size`` answers or
every ``flush_interval`` - not once per answer, which cost a thread switch and a
contended lock per request (measured: ~9 % of a mirroring gateway's samples in
``Queue.put_nowait``). ``close()`` drains the queue and writes everything still
in it, so an answer acknowledged to a user is in the store after a graceful shutdown.

When the store is unavailable (server down, connection cut, file locked) the
batch is kept and retried with backoff until the store is back - the queue
absorbs the outage, and only beyond its bound are answers dropped (counted).
Inserts are idempotent (one row per request, model and role), so a batch whose
commit was acknowledged to nobody is retried without duplicates. A row the store
refuses for what it holds is isolated: the batch is written row by row and only
that row is lost (counted), never its neighbours.

On PostgreSQL a batch goes in as one statement, its rows one JSON parameter
(``shadow.pgbatch``: under a third of the writer's CPU of SQLAlchemy's per-row
executemany); the row-by-row retry uses the generic insert, so what counts as
refused is what the store itself refuses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from changeover.shadow import pgbatch
from changeover.shadow.exchange import Exchange
from changeover.shadowlog.tables import contamination_ledger, ensure_tables, shadow_log
from changeover.store import Store
from changeover.store.engine import is_unavailable

log = logging.getLogger("changeover.gateway")


class Backlog:
    """Exchanges waiting to be written: appended by the event loop, taken by the writer thread.

    ``deque.append`` / ``popleft`` are atomic, so neither side takes a lock; ``ready`` is set when a
    whole batch is waiting (or at close), otherwise the thread wakes on its flush interval.
    """

    def __init__(self, maxsize: int, batch_size: int):
        self.items: deque[Exchange] = deque()
        self.maxsize = maxsize
        self.batch_size = batch_size
        self.ready = threading.Event()

    def qsize(self) -> int:
        return len(self.items)

    def put(self, exchange: Exchange) -> bool:
        """Append unless full; wake the writer when a batch is complete."""
        if len(self.items) >= self.maxsize:
            return False
        self.items.append(exchange)
        if len(self.items) >= self.batch_size and not self.ready.is_set():
            self.ready.set()
        return True

    def take(self) -> list[Exchange]:
        """Up to one batch, oldest first."""
        batch: list[Exchange] = []
        pop = self.items.popleft
        try:
            while len(batch) < self.batch_size:
                batch.append(pop())
        except IndexError:
            pass
        return batch


class LogWriter:
    """Owns the write queue and the thread; counters are plain ints read by /metrics."""

    def __init__(
        self,
        store: Store,
        make_rows: Callable[[Exchange], tuple[dict[str, Any], dict[str, Any] | None]],
        queue_size: int = 20000,
        batch_size: int = 200,
        flush_interval: float = 0.2,
        retries: int = 3,
        max_backoff: float = 2.0,
    ):
        ensure_tables(store)
        self.store = store
        self.make_rows = make_rows
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retries = retries  # for errors that are not an outage
        self.max_backoff = max_backoff
        self.queue = Backlog(queue_size, batch_size)
        self.written = 0
        self.dropped = 0
        self.lost = 0  # rows the store refused (not an outage), or still unwritten when close() gave up
        self.batches = 0
        self.store_errors = 0  # failed write attempts because the store was unavailable (then retried)
        self._thread: threading.Thread | None = None
        self._give_up_at: float | None = None  # set by close(): an outage past it loses what is left
        self._closing = threading.Event()
        self._gave_up = False  # the store stayed down past close()'s timeout: the rest is lost, not tried
        tables = (shadow_log, contamination_ledger)
        _insert = pg_insert if store.dialect == "postgresql" else sqlite_insert
        self._inserts = {t.name: _insert(t).on_conflict_do_nothing() for t in tables}
        # PostgreSQL: a batch in one statement (shadow.pgbatch); None elsewhere
        self._batch_sql = (
            {t.name: pgbatch.recordset_insert(t) for t in tables} if store.dialect == "postgresql" else None
        )

    def submit(self, exchange: Exchange) -> bool:
        """Queue an exchange for writing; False (and counted) when the queue is full or the writer closed."""
        if self._closing.is_set() and self._thread is None:  # nobody would write it
            self.dropped += 1
            return False
        if self.queue.put(exchange):
            return True
        self.dropped += 1
        return False

    def start(self) -> LogWriter:
        self._thread = threading.Thread(target=self._run, name="changeover-log-writer", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread; a store still down after ``timeout``
        seconds loses what is left (counted in ``lost``)."""
        if self._thread is None:
            return
        self._give_up_at = time.monotonic() + timeout
        self._closing.set()
        self.queue.ready.set()  # wakes a writer waiting for its next batch
        self._thread.join(timeout + 5)
        self._thread = None

    def _run(self) -> None:
        backlog = self.queue
        while True:
            closing = self._closing.is_set()
            if not closing and backlog.qsize() < self.batch_size:
                backlog.ready.wait(self.flush_interval)
                closing = self._closing.is_set()
            backlog.ready.clear()
            batch = backlog.take()
            if batch and self._gave_up:
                self.lost += len(batch)  # counted at once: each batch would wait out another timeout
            elif batch:
                self._write(batch)
            elif closing:
                return

    def _write(self, batch: list[Exchange]) -> None:
        rows, ledger = [], []
        for ex in batch:
            try:
                row, entry = self.make_rows(ex)
            except Exception:  # noqa: BLE001 - one bad exchange must not lose the batch
                log.exception("cannot log request %s", ex.request_id)
                self.lost += 1
                continue
            rows.append(row)
            if entry is not None:
                ledger.append(entry)
        outage = refused = 0
        while True:
            try:
                self._insert(rows, ledger)
                self.written += len(rows)
                self.batches += 1
                return
            except Exception as exc:  # noqa: BLE001 - sorted by cause below
                if is_unavailable(exc):
                    self.store_errors += 1
                    if self._give_up_at is not None and time.monotonic() > self._give_up_at:
                        log.error(
                            "the store is still unavailable at shutdown: %d log rows (and all still queued) are lost",
                            len(rows),
                        )
                        self.lost += len(rows)
                        self._gave_up = True
                        return
                    if outage == 0:
                        log.warning("the store is unavailable; holding %d log rows and retrying: %s", len(rows), exc)
                    time.sleep(min(self.max_backoff, 0.05 * 2**outage))
                    outage += 1
                    continue
                refused += 1
                if refused > self.retries:
                    self._row_by_row(rows, ledger)
                    return
                time.sleep(0.05 * refused)

    def _insert(self, rows: list[dict[str, Any]], ledger: list[dict[str, Any]], batched: bool = True) -> None:
        """Both tables' rows in one transaction; ``batched``: PostgreSQL takes each table's rows in one statement."""
        with self.store.engine.begin() as conn:
            for table, batch in ((shadow_log, rows), (contamination_ledger, ledger)):
                if not batch:
                    continue
                payload = pgbatch.encode(batch) if batched and self._batch_sql is not None else None
                if payload is None:
                    conn.execute(self._inserts[table.name], batch)
                else:
                    conn.exec_driver_sql(self._batch_sql[table.name], (payload,))

    def _row_by_row(self, rows: list[dict[str, Any]], ledger: list[dict[str, Any]]) -> None:
        """The store refuses the batch for what it holds: write each answer alone, lose only the bad ones."""
        entries = {e["request_id"]: e for e in ledger}
        for row in rows:
            entry = entries.get(row["request_id"]) if row["role"] == "served" else None
            try:
                self._insert([row], [entry] if entry else [], batched=False)
                self.written += 1
            except Exception:  # noqa: BLE001 - counted and logged, the rest of the batch is kept
                log.exception("the store refused the log row of request %s; it is lost", row["request_id"])
                self.lost += 1
        self.batches += 1
