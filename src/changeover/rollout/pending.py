"""A rollout change the store could not take (it was down): applied locally, retried until it lands once.

A rollback decided while the database is unreachable must neither be lost nor be
mistaken for a lost race. ``ChangeRetrier.run`` writes the change; when the store
is unavailable it keeps the change *pending*, returns the state it will write
(the gateway routes by it at once), and ``retry`` tries again with exponential
backoff. When the store is back the change lands exactly once, in one
transaction with a ``rollout.change_failed`` event saying what failed, when and
how often. Each write carries a change id, so a retry whose earlier attempt did
commit (the acknowledgement was lost with the connection) sees its own change
in the flag and writes nothing again. A rollback is re-applied over any other
change made meanwhile, and replaces any other change still waiting; any other
pending change is dropped if the flag moved (an event says so).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from changeover.errors import FlagConflict, StoreUnavailable
from changeover.rollout.config import RolloutConfig
from changeover.rollout.state import ACTIONS, RolloutError, RolloutState, read_state
from changeover.store import Store
from changeover.store.engine import cause
from changeover.store.events import now, record_event
from changeover.store.flags import EventSpec

log = logging.getLogger("changeover.rollout")


@dataclass(slots=True)
class PendingChange:
    """A change decided but not yet in the store."""

    action: str
    actor: str
    reason: str
    payload: dict[str, Any]
    base: RolloutState  # the state it was decided on
    preview: RolloutState  # the state it will write (routing follows it meanwhile)
    first_error: str
    first_failed_at: datetime
    also: tuple[EventSpec, ...] = ()  # events that go with it (the controller's analysis)
    change: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempts: int = 1
    last_error: str = ""
    next_try: float = 0.0  # time.monotonic() of the next attempt
    clock: Callable[[], datetime] = now  # the deciding controller's clock (the state's since, the hold's times)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "actor": self.actor,
            "reason": self.reason,
            "attempts": self.attempts,
            "first_failed_at": self.first_failed_at.isoformat(),
            "first_error": self.first_error,
            "last_error": self.last_error or self.first_error,
            "change": self.change,
        }


class ChangeRetrier:
    """Writes rollout changes; holds at most one pending change and retries it with backoff."""

    def __init__(
        self,
        store: Store,
        config: RolloutConfig,
        base_delay: float = 0.25,
        max_delay: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self.config = config
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        self.pending: PendingChange | None = None
        self.failed_attempts = 0  # writes refused because the store was unavailable
        self.landed_after_failure = 0  # pending changes that landed later
        self._lock = threading.Lock()

    def _delay(self, attempts: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (attempts - 1))

    def due(self) -> float | None:
        """Seconds until the pending change should be tried again (None: nothing pending)."""
        pending = self.pending
        return None if pending is None else max(0.0, pending.next_try - self.clock())

    def run(
        self,
        action: str,
        state: RolloutState,
        actor: str,
        reason: str | None,
        payload: dict[str, Any] | None = None,
        also: tuple[EventSpec, ...] = (),
        clock: Callable[[], datetime] = now,
    ) -> tuple[RolloutState, bool]:
        """Apply ``action`` to ``state``: (the new state, True) when written; (the state it will
        write, False) when the store is unavailable and the change is now pending.

        ``RolloutError``/``LimitExceeded`` (the action does not apply) and ``FlagConflict``
        (someone changed the flag first) propagate: those are not outages.
        """
        act = ACTIONS[action]
        with self._lock:
            replaced = None
            if self.pending is not None and action == "rollback" and self.pending.action != "rollback":
                replaced, self.pending = self.pending, None  # a rollback goes before any other waiting change
                state = replaced.base
                payload = {**(payload or {}), "replaced": replaced.to_json()}  # said in the rollback's event
            if self.pending is not None:
                raise StoreUnavailable(
                    f"rollout {action}: a {self.pending.action} is still waiting for the store "
                    f"({self.pending.attempts} attempts since {self.pending.first_failed_at:%H:%M:%S} UTC); "
                    "it lands when the store is back"
                )
            preview = act(self.store, self.config, state, actor, reason, payload, dry_run=True, clock=clock)
            try:
                return act(
                    self.store,
                    self.config,
                    state,
                    actor,
                    reason,
                    payload,
                    change=preview.change,
                    also=also,
                    clock=clock,
                ), True
            except StoreUnavailable as exc:
                self.failed_attempts += 1
                self.pending = PendingChange(
                    action=action,
                    actor=actor,
                    reason=str(reason).strip(),
                    payload=dict(payload or {}),
                    base=state,
                    preview=preview,
                    first_error=_why(exc),
                    first_failed_at=now(),
                    also=also,
                    change=preview.change or uuid.uuid4().hex,
                    next_try=self.clock() + self._delay(1),
                    clock=clock,
                )
                log.warning("rollout %s could not be written (store unavailable); retrying: %s", action, exc)
                return preview, False

    def retry(self) -> RolloutState | None:
        """Try the pending change once: the state it wrote (or found), None if still pending or dropped."""
        with self._lock:
            p = self.pending
            if p is None:
                return None
            try:
                landed = self._land(p)
            except StoreUnavailable as exc:
                self.failed_attempts += 1
                p.attempts += 1
                p.last_error = _why(exc)
                p.next_try = self.clock() + self._delay(p.attempts)
                return None
            self.pending = None
            return landed

    def _failure_event(self, p: PendingChange, outcome: str) -> EventSpec:
        return EventSpec(
            "rollout.change_failed",
            f"{p.action} could not be written while the store was unavailable: {p.first_error}",
            {**p.to_json(), "outcome": outcome, "failed_for_s": round((now() - p.first_failed_at).total_seconds(), 3)},
        )

    def _land(self, p: PendingChange) -> RolloutState | None:
        for _race in range(10):
            current = read_state(self.store, self.config, p.base.candidate)
            if current.change == p.change:  # an earlier attempt committed; its answer was lost
                self.landed_after_failure += 1
                return current
            base = p.base
            if current.version != p.base.version:
                if p.action != "rollback" or current.status == "rolled_back":
                    dropped = self._failure_event(p, "superseded")
                    with self.store.reachable(f"recording the dropped rollout {p.action}"):
                        record_event(
                            self.store, dropped.kind, self.config.flag, p.actor, dropped.reason, dropped.payload
                        )
                    log.warning("pending rollout %s dropped: the flag changed meanwhile", p.action)
                    return None
                base = current  # a rollback still applies over whatever happened meanwhile
            try:
                new = ACTIONS[p.action](
                    self.store,
                    self.config,
                    base,
                    p.actor,
                    p.reason,
                    p.payload,
                    change=p.change,
                    also=(*p.also, self._failure_event(p, "landed")),
                    clock=p.clock,
                )
            except FlagConflict:
                continue  # the flag moved between our read and write: look again
            except RolloutError as exc:  # it no longer applies to the state found: say so, drop it
                dropped = self._failure_event(p, f"not applicable: {exc}")
                with self.store.reachable(f"recording the dropped rollout {p.action}"):
                    record_event(self.store, dropped.kind, self.config.flag, p.actor, dropped.reason, dropped.payload)
                return None
            self.landed_after_failure += 1
            log.warning("rollout %s landed after %d failed attempts", p.action, p.attempts)
            return new
        raise StoreUnavailable(f"rollout {p.action}: the flag kept changing under the retry; retrying")


def _why(exc: StoreUnavailable) -> str:
    """The driver's one-line reason the store refused (no SQL, no traceback)."""
    return cause(exc.__cause__) if exc.__cause__ is not None else str(exc)
