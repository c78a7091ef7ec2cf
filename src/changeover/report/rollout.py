"""The rollout section: the stages, trigger breaches and rollbacks of a migration, read
from the store's append-only event log, as a timeline plot of the candidate's traffic
share and a table of who did what, when and why.

Section input is ``RolloutTimeline`` (a list of ``plots.Milestone`` plus table rows);
``rollout_timeline(events)`` builds it from ``store.events.list_events``. It reads the
rollout feature's events (``rollout.start|advance|pause|resume|rollback`` with the flag's
``to_weight`` in percent, and ``rollout.analysis`` runs with their measurements); routine
analysis runs that changed nothing are counted, not listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from changeover.report.plots import Milestone
from changeover.store.events import Event

ROLLOUT_KINDS = ("rollout", "stage", "rollback", "trigger")
PERCENT_KEYS = ("to_weight", "weight", "percent")  # 0..100, as the rollout's stage weights
FRACTION_KEYS = ("share", "candidate_share")  # 0..1
FAILED_PHASES = ("failed", "error", "breach")


@dataclass(slots=True)
class RolloutTimeline:
    """Section input: milestones for the plot, and the event table."""

    milestones: list[Milestone]
    rows: list[dict[str, Any]] = field(default_factory=list)
    trigger_checks: int = 0  # analysis runs / trigger evaluations that changed nothing

    @property
    def rollbacks(self) -> int:
        return sum(m.severity == "bad" and "rollback" in m.kind for m in self.milestones)


def candidate_share(payload: dict[str, Any]) -> float | None:
    """The candidate's traffic share (0..1) after an event, when its payload says."""
    to = payload.get("to") if isinstance(payload.get("to"), dict) else {}
    for source in (payload, to):
        for key in PERCENT_KEYS:
            value = source.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value) / 100
        for key in FRACTION_KEYS:
            value = source.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None


def is_check(event: Event) -> bool:
    """A trigger evaluation or an analysis run (rather than a change of the rollout)."""
    return event.kind.startswith("trigger") or event.kind.endswith(".analysis")


def _failed(payload: dict[str, Any]) -> bool:
    if payload.get("action") in ("rollback", "pause") or payload.get("breached"):
        return True
    if str(payload.get("outcome", payload.get("phase", ""))).lower() in FAILED_PHASES:
        return True
    return any(
        str(m.get("phase", "")).lower() in FAILED_PHASES
        for m in payload.get("measurements") or []
        if isinstance(m, dict)
    )


def severity(event: Event) -> str:
    """good (advanced), bad (rollback, failed check), or info."""
    kind = event.kind.lower()
    if "rollback" in kind or (is_check(event) and _failed(event.payload)):
        return "bad"
    if "advance" in kind or "promote" in kind or "complete" in kind:
        return "good"
    return "info"


def is_rollout_event(event: Event) -> bool:
    return event.kind.split(".", 1)[0].lower() in ROLLOUT_KINDS


def _share_for_plot(event: Event) -> float | None:
    return None if is_check(event) else candidate_share(event.payload)


def rollout_timeline(events: Iterable[Event]) -> RolloutTimeline | None:
    """Milestones and table rows from events; passing checks are only counted."""
    timeline = RolloutTimeline([])
    for e in events:
        if not is_rollout_event(e):
            continue
        level = severity(e)
        if is_check(e) and level != "bad":
            timeline.trigger_checks += 1
            continue
        share = _share_for_plot(e)
        timeline.milestones.append(Milestone(e.at, e.kind, e.reason or e.kind, share, level))
        timeline.rows.append(
            {
                "at": e.at,
                "kind": e.kind,
                "subject": e.subject,
                "actor": e.actor,
                "reason": e.reason or "",
                "share": share,
                "severity": level,
            }
        )
    return timeline if timeline.milestones else None
