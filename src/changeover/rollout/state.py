"""The rollout's stage, held in one store flag; every change is a compare-and-set plus an event.

The flag value is ``{"candidate", "stage", "weight", "status", "since"}``. Status is
``progressing`` (the controller may advance), ``paused`` (waits for an operator),
``rolled_back`` (everyone on the incumbent until an operator advances),
``holding`` (the candidate serves everyone; the incumbent stays warm, is
reverse-mirrored and the triggers keep running for ``rollout.hold``) or
``complete`` (the hold is over and the incumbent decommissioned). Reaching the
100 % stage starts the hold (event ``rollout.hold_start`` with the advance);
advancing from the hold - the controller once it has passed, or an operator -
ends it (``rollout.hold_end``) and decommissions the incumbent
(``rollout.decommission``, the flag change), in one transaction. A pause in the
hold stops its clock and a resume continues it: the time already held counts
(``held_s`` in the flag value), only the rest is left. The actions take the
caller's ``clock`` (the controller's), so the new state's ``since``, the hold's
planned end and how long it held agree with the clock that decided. Operators and
the controller change it through the functions here, so every change carries an
actor and a reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from changeover.errors import ChangeoverError, FlagConflict, LimitExceeded
from changeover.rollout.config import RolloutConfig
from changeover.store import Store
from changeover.store.events import now
from changeover.store.flags import EventSpec, get_flag, set_flag

Status = Literal["progressing", "paused", "rolled_back", "holding", "complete"]

MAX_REASON = 2000  # characters; a 200k-character reason once made the report 1 million px wide
MAX_ACTOR = 100  # characters; the event log's actor column holds 128 (with a prefix such as "admin-api:")


class RolloutError(ChangeoverError):
    """An operator action that does not apply to the rollout's current state."""


@dataclass(frozen=True, slots=True)
class RolloutState:
    """A snapshot of the flag: who the candidate is, which stage, at what weight, since when."""

    candidate: str
    stage: int
    weight: int
    status: Status
    since: datetime
    version: int  # the flag's version; 0 = never written (defaults)
    updated_by: str | None = None
    change: str | None = None  # id of the change that wrote this state (a retried change checks it landed)
    held_s: float = 0.0  # seconds of the hold already held before ``since`` (a pause in it, then a resume)

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "stage": self.stage,
            "weight": self.weight,
            "status": self.status,
            "since": self.since.isoformat(),
            "version": self.version,
            "updated_by": self.updated_by,
            "held_s": self.held_s,
        }


def initial_state(config: RolloutConfig, candidate: str) -> RolloutState:
    return RolloutState(candidate, 0, config.stages[0].weight, "progressing", now(), 0)


def state_from_value(
    value: dict[str, Any], version: int, updated_by: str | None, fallback_since: datetime
) -> RolloutState:
    since = value.get("since")
    return RolloutState(
        candidate=str(value["candidate"]),
        stage=int(value["stage"]),
        weight=int(value["weight"]),
        status=value.get("status", "progressing"),
        since=datetime.fromisoformat(since) if since else fallback_since,
        version=version,
        updated_by=updated_by,
        change=value.get("change"),
        held_s=float(value.get("held_s", 0.0)),
    )


def read_state(store: Store, config: RolloutConfig, candidate: str) -> RolloutState:
    """The current state, or the first stage when the flag was never set."""
    flag = get_flag(store, config.flag)
    if flag is None:
        return initial_state(config, candidate)
    return state_from_value(flag.value, flag.version, flag.updated_by, flag.updated_at)


def ensure_started(store: Store, config: RolloutConfig, candidate: str, actor: str) -> RolloutState:
    """Write the first stage to the flag if nobody has yet (event ``rollout.start``): the
    stage's window starts then. Losing the race to another replica is fine."""
    state = read_state(store, config, candidate)
    if state.version:
        return state
    try:
        flag = set_flag(
            store,
            config.flag,
            {
                "candidate": candidate,
                "stage": 0,
                "weight": state.weight,
                "status": "progressing",
                "since": state.since.isoformat(),
            },
            actor,
            "rollout started",
            expect_version=0,
            event_kind="rollout.start",
        )
    except FlagConflict:  # another replica wrote it first
        return read_state(store, config, candidate)
    return RolloutState(candidate, 0, state.weight, "progressing", state.since, flag.version, actor)


def _write(
    store: Store,
    config: RolloutConfig,
    state: RolloutState,
    *,
    stage: int,
    status: Status,
    kind: str,
    actor: str,
    reason: str | None,
    payload: dict[str, Any] | None = None,
    change: str | None = None,
    also: tuple[EventSpec, ...] = (),
    dry_run: bool = False,
    clock: Callable[[], datetime] = now,
    held_s: float = 0.0,
) -> RolloutState:
    """Write the new state (compare-and-set on ``state.version``) with its event and any ``also``
    events; ``dry_run`` returns the state the write would produce, unwritten (same version). The state
    starts at ``clock()``; ``held_s``: the hold time already held (a hold resumed after a pause)."""
    weight = 0 if status == "rolled_back" else config.stages[stage].weight
    at = clock()
    change = change or uuid.uuid4().hex
    if dry_run:
        return RolloutState(state.candidate, stage, weight, status, at, state.version, actor, change, held_s)
    value: dict[str, Any] = {
        "candidate": state.candidate,
        "stage": stage,
        "weight": weight,
        "status": status,
        "since": at.isoformat(),
        "change": change,
    }
    if held_s:
        value["held_s"] = round(held_s, 3)
    flag = set_flag(
        store,
        config.flag,
        value,
        actor,
        reason,
        expect_version=state.version,
        event_kind=kind,
        payload={
            "from_stage": state.stage,
            "to_stage": stage,
            "from_weight": state.weight,
            "to_weight": weight,
            "change": change,
            **(payload or {}),
        },
        also=also,
    )
    return RolloutState(state.candidate, stage, weight, status, at, flag.version, actor, change, held_s)


def arrival_status(config: RolloutConfig, stage: int) -> Status:
    """The status of a rollout that moves (or resumes) at ``stage``: at 100 % the hold, unless it is 0."""
    if config.stages[stage].weight < 100:
        return "progressing"
    return "holding" if config.hold > 0 else "complete"


def holding(weight: int, status: str) -> bool:
    """The candidate serves everyone while the incumbent is still warm (the hold, or paused in it):
    the incumbent is reverse-mirrored and the triggers compare the candidate with it."""
    return weight >= 100 and status not in ("complete", "rolled_back")


def in_hold(state: RolloutState) -> bool:
    return holding(state.weight, state.status)


def held_for(state: RolloutState, at: datetime) -> float:
    """Seconds of the hold held at ``at``: what was held before ``since`` plus, while holding (not paused),
    the time since."""
    running = (at - state.since).total_seconds() if state.status == "holding" else 0.0
    return state.held_s + max(0.0, running)


def _hold_start(config: RolloutConfig, reason: str, at: datetime, held_s: float) -> EventSpec:
    left = max(0.0, config.hold - held_s)
    ends = at + timedelta(seconds=left)
    if held_s:
        why = (
            f"at 100 %: the hold continues - {held_s:g}s of {config.hold:g}s held before the pause, {left:g}s "
            f"left; {config.reverse_mirror:.0%} of requests reverse-mirrored to the incumbent ({reason})"
        )
    else:
        why = (
            f"at 100 %: the incumbent stays warm for {config.hold:g}s, {config.reverse_mirror:.0%} of requests "
            f"reverse-mirrored to it, triggers running ({reason})"
        )
    payload = {"hold_s": config.hold, "reverse_mirror": config.reverse_mirror, "ends_at": ends.isoformat()}
    if held_s:
        payload["held_s"] = round(held_s, 3)
    return EventSpec("rollout.hold_start", why, payload)


def _with_hold_start(
    config: RolloutConfig, status: Status, reason: str, write: dict[str, Any], held_s: float = 0.0
) -> dict[str, Any]:
    if status == "holding":
        at = write.get("clock", now)()
        write = {**write, "held_s": held_s, "also": (*write.get("also", ()), _hold_start(config, reason, at, held_s))}
    return write


def end_hold(
    store: Store,
    config: RolloutConfig,
    state: RolloutState,
    actor: str,
    reason: str,
    payload: dict[str, Any] | None = None,
    **write: Any,
) -> RolloutState:
    """The hold is over: event ``rollout.hold_end``, then the flag moves to ``complete`` with event
    ``rollout.decommission`` (the incumbent is no longer mirrored, nor needed), in one transaction."""
    held = held_for(state, write.get("clock", now)())
    hold_end = EventSpec(
        "rollout.hold_end",
        reason,
        {"hold_s": config.hold, "held_for_s": round(held, 3), "started_at": state.since.isoformat()},
    )
    return _write(
        store,
        config,
        state,
        stage=state.stage,
        status="complete",
        kind="rollout.decommission",
        actor=actor,
        reason=f"the incumbent is decommissioned: {state.candidate} serves everyone, reverse mirroring stops",
        payload={"held_for_s": round(held, 3), **(payload or {})},
        **{**write, "also": (*write.get("also", ()), hold_end)},
    )


def _need_reason(reason: str | None, action: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise RolloutError(f'rollout {action}: give a reason (--reason "..."); it goes into the event log')
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise LimitExceeded(
            f"rollout {action}: the reason is {len(reason):,} characters; the limit is {MAX_REASON:,} - "
            "summarise it and link to the details"
        )
    return reason


def check_actor(actor: str) -> str:
    """An actor name within ``MAX_ACTOR`` characters (it is stored with every event)."""
    if len(actor) > MAX_ACTOR:
        raise LimitExceeded(f"--actor: {len(actor):,} characters; the limit is {MAX_ACTOR}")
    return actor


def advance(
    store: Store,
    config: RolloutConfig,
    state: RolloutState,
    actor: str,
    reason: str | None,
    payload: dict[str, Any] | None = None,
    **write: Any,
) -> RolloutState:
    """Move to the next stage (from a rollback: to the first stage with traffic); reaching 100 %
    starts the hold; advancing during the hold ends it (``end_hold``)."""
    reason = _need_reason(reason, "advance")
    if state.status == "holding":
        return end_hold(store, config, state, actor, reason, payload, **write)
    nxt = state.stage + 1
    if state.status == "rolled_back":
        nxt = next((i for i, s in enumerate(config.stages) if s.weight > 0), len(config.stages) - 1)
    if nxt >= len(config.stages):
        raise RolloutError(f"rollout advance: already at the last stage ({state.weight}%); nothing to advance")
    status = arrival_status(config, nxt)
    return _write(
        store,
        config,
        state,
        stage=nxt,
        status=status,
        kind="rollout.advance",
        actor=actor,
        reason=reason,
        payload=payload,
        **_with_hold_start(config, status, reason, write),
    )


def pause(
    store: Store,
    config: RolloutConfig,
    state: RolloutState,
    actor: str,
    reason: str | None,
    payload: dict[str, Any] | None = None,
    **write: Any,
) -> RolloutState:
    """Hold the current weight; the controller stops advancing until an operator acts."""
    reason = _need_reason(reason, "pause")
    if state.status in ("paused", "rolled_back"):
        raise RolloutError(f"rollout pause: the rollout is already {state.status.replace('_', ' ')}")
    if state.status == "holding":  # the hold's clock stops; a resume continues it
        write = {**write, "held_s": held_for(state, write.get("clock", now)())}
    return _write(
        store,
        config,
        state,
        stage=state.stage,
        status="paused",
        kind="rollout.pause",
        actor=actor,
        reason=reason,
        payload=payload,
        **write,
    )


def resume(
    store: Store,
    config: RolloutConfig,
    state: RolloutState,
    actor: str,
    reason: str | None,
    payload: dict[str, Any] | None = None,
    **write: Any,
) -> RolloutState:
    """Let the controller advance again from the current stage (paused in the hold: the hold continues
    for the time it had left - the time held before the pause counts)."""
    reason = _need_reason(reason, "resume")
    if state.status != "paused":
        raise RolloutError(f"rollout resume: the rollout is {state.status.replace('_', ' ')}, not paused")
    status = arrival_status(config, state.stage)
    return _write(
        store,
        config,
        state,
        stage=state.stage,
        status=status,
        kind="rollout.resume",
        actor=actor,
        reason=reason,
        payload=payload,
        **_with_hold_start(config, status, reason, write, state.held_s),
    )


def rollback(
    store: Store,
    config: RolloutConfig,
    state: RolloutState,
    actor: str,
    reason: str | None,
    payload: dict[str, Any] | None = None,
    **write: Any,
) -> RolloutState:
    """Everyone back on the incumbent (weight 0); mirroring continues."""
    reason = _need_reason(reason, "rollback")
    if state.status == "rolled_back":
        raise RolloutError("rollout rollback: already rolled back; everyone is on the incumbent")
    return _write(
        store,
        config,
        state,
        stage=0,
        status="rolled_back",
        kind="rollout.rollback",
        actor=actor,
        reason=reason,
        payload=payload,
        **write,
    )


ACTIONS = {"advance": advance, "pause": pause, "resume": resume, "rollback": rollback}
"""Every operator action by name (CLI, admin API and the controller use these)."""


def try_change(action, *args, **kwargs) -> RolloutState | None:
    """Run an action for the controller: a lost compare-and-set (another replica or an
    operator changed the flag first) returns None instead of raising. A store that cannot
    be reached is not a lost race: ``StoreUnavailable`` propagates (see ``rollout.pending``)."""
    try:
        return action(*args, **kwargs)
    except FlagConflict:
        return None
