"""The queue's order and the live decision, recomputed off the request path.

A background thread re-reads the store's records (new imports, new labels),
rebuilds the task catalogue, and refits the assessment every
``refresh_every_labels`` new labels or ``refresh_seconds``, whichever comes
first. Pages only ever read the latest finished ``Snapshot``; they never wait
for a fit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from changeover.labeling.tasks import Catalogue, TaskKey
from changeover.store.events import now

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One finished refresh: the catalogue, the value rank of each response, the decision."""

    catalogue: Catalogue
    rank: dict[TaskKey, int] = field(default_factory=dict)
    decision: Any = None  # the assessment's typed result (``Assessment.decision``)
    labels_needed: dict[str, dict[str, int]] = field(default_factory=dict)  # ``Assessment.labels_needed``
    gold: dict[TaskKey, dict[str, int]] = field(default_factory=dict)  # gold responses and their answers
    recheck: frozenset[str] = frozenset()  # annotators with low gold agreement: their labels get a second one
    error: str | None = None
    at: datetime = field(default_factory=now)
    seconds: float = 0.0


def rank_from_next_labels(next_labels: list[dict[str, Any]], dimensions: list[str] | None = None) -> dict[TaskKey, int]:
    """(item, model) -> position of its most valuable label in ``next_labels`` (best first),
    counting only labels on ``dimensions`` (the ones annotators judge here)."""
    rank: dict[TaskKey, int] = {}
    for entry in next_labels:
        if dimensions is not None and entry.get("dimension") not in dimensions:
            continue
        key = (str(entry["item"]), str(entry["model"]))
        rank.setdefault(key, len(rank))
    return rank


class Refresher:
    """Holds the latest snapshot and refreshes it in a daemon thread."""

    def __init__(self, compute: Callable[[bool], Snapshot], every_labels: int, every_seconds: float):
        self._compute = compute
        self.every_labels = every_labels
        self.every_seconds = every_seconds
        self._snapshot: Snapshot | None = None
        self._new_labels = 0
        self._count_lock = threading.Lock()
        self._last = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshes = 0
        self._pending_full = True  # the first snapshot has no ranking: fit in the background at once

    @property
    def snapshot(self) -> Snapshot:
        """The latest finished snapshot (the first one, without a ranking, is built on demand)."""
        if self._snapshot is None:
            self._snapshot = self._compute(False)
        return self._snapshot

    def refresh(self, full: bool = True) -> Snapshot:
        """Recompute now in the calling thread; ``full`` refits the assessment too."""
        started = time.monotonic()
        self._new_labels = 0
        self._pending_full = False
        snap = self._compute(full)
        self._last = time.monotonic()
        self._snapshot = snap
        self.refreshes += 1
        log.info("labelling queue refreshed in %.2fs", self._last - started)
        return snap

    def labels_added(self, n: int = 1) -> None:
        """Count new labels (from any request thread); wake the refit when enough arrived."""
        with self._count_lock:
            self._new_labels += n
        if self._new_labels >= self.every_labels:
            self._wake.set()

    def _due(self) -> bool:
        if self._pending_full or self._new_labels >= self.every_labels:
            return True
        return self._new_labels > 0 and time.monotonic() - self._last >= self.every_seconds

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._pending_full:
                self._wake.wait(timeout=min(self.every_seconds, 5.0))
                self._wake.clear()
            if self._stop.is_set():
                break
            if self._due():
                try:
                    self.refresh()
                except Exception:  # keep serving the last good snapshot
                    self._pending_full = False
                    log.exception("refreshing the labelling queue failed")

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="changeover-label-ranking", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
