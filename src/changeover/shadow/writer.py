"""The batched background writer: the request path hands off an ``Exchange`` and never waits.

A bounded queue feeds one thread that turns exchanges into rows and inserts them
in batches (one transaction per batch). When the queue is full the exchange is
dropped and counted. ``close()`` drains the queue and writes everything still
in it, so an answer acknowledged to a user is in the store after a graceful shutdown.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert

from changeover.shadow.exchange import Exchange
from changeover.shadow.tables import contamination_ledger, ensure_tables, shadow_log
from changeover.store import Store

log = logging.getLogger("changeover.gateway")

_STOP = object()


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
    ):
        ensure_tables(store)
        self.store = store
        self.make_rows = make_rows
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retries = retries
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.written = 0
        self.dropped = 0
        self.lost = 0  # rows in batches the store refused after every retry
        self.batches = 0
        self._thread: threading.Thread | None = None

    def submit(self, exchange: Exchange) -> bool:
        """Queue an exchange for writing; False (and counted) when the queue is full."""
        try:
            self.queue.put_nowait(exchange)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def start(self) -> LogWriter:
        self._thread = threading.Thread(target=self._run, name="changeover-log-writer", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread."""
        if self._thread is None:
            return
        self.queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[Exchange] = []
            deadline = time.monotonic() + self.flush_interval
            while len(batch) < self.batch_size:
                try:
                    item = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            if stopping:  # drain whatever is left
                while True:
                    try:
                        item = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not _STOP:
                        batch.append(item)
            if batch:
                self._write(batch)

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
        for attempt in range(self.retries + 1):
            try:
                with self.store.engine.begin() as conn:
                    if rows:
                        conn.execute(insert(shadow_log), rows)
                    if ledger:
                        conn.execute(insert(contamination_ledger), ledger)
                self.written += len(rows)
                self.batches += 1
                return
            except Exception:  # noqa: BLE001 - the store may be briefly unavailable
                if attempt == self.retries:
                    log.exception("the store refused %d log rows; they are lost", len(rows))
                    self.lost += len(rows)
                    return
                time.sleep(0.2 * 2**attempt)
