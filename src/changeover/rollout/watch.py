"""Keep a fresh copy of the rollout flag in memory: a background thread polls the store.

Routing reads the copy, never the database, so the request path does not wait
on the store; a flip made by any replica or operator is seen within one poll
interval (default 0.25 s). A failed poll keeps the last known state and is counted.
Snapshots only move forward by flag version: a poll that read the flag just
before an operator's write cannot put the older state back over the newer one.
A change that is waiting for an unreachable store (``rollout.pending``) is
*held*: routing follows it at once, and only a newer version from the store
(the change landing, or someone else's change) replaces it.
"""

from __future__ import annotations

import threading

from changeover.rollout.config import RolloutConfig
from changeover.rollout.state import RolloutState, read_state
from changeover.store import Store


class FlagWatcher:
    """Polls the rollout flag; ``state`` is the latest snapshot (thread-safe to read)."""

    def __init__(self, store: Store, config: RolloutConfig, candidate: str, interval: float = 0.25):
        self.store = store
        self.config = config
        self.candidate = candidate
        self.interval = interval
        self.poll_errors = 0
        self._held_over: int | None = None  # version a held (not yet written) state replaces
        self._lock = threading.Lock()
        self.state: RolloutState = read_state(store, config, candidate)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def offer(self, state: RolloutState) -> RolloutState:
        """Keep ``state`` unless the snapshot held is newer (a higher flag version)."""
        with self._lock:
            if self._held_over is not None:
                if state.version <= self._held_over:
                    return self.state
                self._held_over = None
            if state.version >= self.state.version:
                self.state = state
            return self.state

    def hold(self, state: RolloutState) -> RolloutState:
        """Route by ``state`` (a change not yet in the store, decided on version ``state.version``)
        until the store has a newer version."""
        with self._lock:
            self._held_over = state.version
            self.state = state
            return state

    def refresh(self) -> RolloutState:
        try:
            return self.offer(read_state(self.store, self.config, self.candidate))
        except Exception:  # noqa: BLE001 - a flaky store must not take routing down
            self.poll_errors += 1
        return self.state

    def start(self) -> FlagWatcher:
        self._thread = threading.Thread(target=self._run, name="changeover-flag-watch", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
