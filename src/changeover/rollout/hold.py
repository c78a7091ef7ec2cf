"""What an operator sees of the hold after the cut-over: time left, the reverse mirror, the last readings.

Read from the store only (the flag, the shadow log, the event log), so
``changeover rollout status`` shows it from any machine, gateway running or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from changeover.rollout.config import RolloutConfig
from changeover.rollout.state import RolloutState, held_for, in_hold
from changeover.shadowlog.tables import shadow_log
from changeover.store import Store
from changeover.store.events import Event, aware, now
from changeover.store.schema import events


@dataclass(frozen=True, slots=True)
class HoldView:
    """The hold as it stands: when it started and ends, the reverse mirror's rate and what it sent."""

    status: str  # holding | paused (paused in the hold: its clock stops; a resume continues it)
    started: datetime  # when this stretch of the hold started (the hold, or its last resume or pause)
    ends_at: datetime  # paused: when it would end if resumed now
    left_s: float
    hold_s: float
    held_s: float  # held so far (the time before a pause counts)
    reverse_mirror: float
    mirrored: int  # incumbent answers reverse-mirrored since the hold started
    served: int  # candidate answers served since then

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "started": self.started.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "left_s": round(self.left_s, 3),
            "hold_s": self.hold_s,
            "held_s": round(self.held_s, 3),
            "reverse_mirror": self.reverse_mirror,
            "mirrored_to_incumbent": self.mirrored,
            "served_by_candidate": self.served,
        }


def hold_view(store: Store, config: RolloutConfig, state: RolloutState, incumbent: str, clock=now) -> HoldView | None:
    """The hold of ``state``, or None when the rollout is not in one."""
    if not in_hold(state):
        return None
    c = shadow_log.c
    q = (
        select(c.model, c.role, func.count().label("n"))
        .where(c.at >= state.since, c.model.in_([incumbent, state.candidate]))
        .group_by(c.model, c.role)
    )
    with store.engine.connect() as conn:
        counts = {(r.model, r.role): int(r.n) for r in conn.execute(q)}
    at = clock()
    held = held_for(state, at)
    left = max(0.0, config.hold - held)
    return HoldView(
        status=state.status,
        started=state.since,
        ends_at=at + timedelta(seconds=left),
        left_s=left,
        hold_s=config.hold,
        held_s=held,
        reverse_mirror=config.reverse_mirror,
        mirrored=counts.get((incumbent, "mirror"), 0),
        served=counts.get((state.candidate, "served"), 0),
    )


def last_event(store: Store, config: RolloutConfig, kind: str) -> Event | None:
    """The latest event of ``kind`` on the rollout flag (e.g. ``rollout.analysis``, ``rollout.decommission``):
    one row read (newest id first, limit 1), however many analysis runs the flag has logged."""
    e = events.c
    q = select(events).where(e.subject == config.flag, e.kind.startswith(kind)).order_by(e.id.desc()).limit(1)
    with store.engine.connect() as conn:
        r = conn.execute(q).first()
    return None if r is None else Event(r.id, aware(r.at), r.kind, r.subject, r.actor, r.reason, r.payload or {})
