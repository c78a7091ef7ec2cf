"""The rollout section: the stages, trigger breaches and rollbacks of a migration, read
from the store's append-only event log, as a timeline plot of the candidate's traffic
share and a table of who did what, when and why.

Section input is ``RolloutTimeline`` (a list of ``plots.Milestone`` plus table rows);
``rollout_timeline(events)`` builds it from ``store.events.list_events``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from changeover.report.plots import Milestone
from changeover.store.events import Event

ROLLOUT_KINDS = ("rollout", "stage", "rollback", "trigger", "flag", "operator")
SHARE_KEYS = ("weight", "share", "candidate_share", "percent")


@dataclass(slots=True)
class RolloutTimeline:
    """Section input: milestones for the plot, and the event table."""

    milestones: list[Milestone]
    rows: list[dict[str, Any]] = field(default_factory=list)
    trigger_checks: int = 0      # evaluations that passed (not listed one by one)

    @property
    def rollbacks(self) -> int:
        return sum(m.severity == "bad" and "rollback" in m.kind for m in self.milestones)


def candidate_share(payload: dict[str, Any]) -> float | None:
    """The candidate's traffic share after an event, when its payload says (0..1 or 0..100)."""
    for source in (payload, payload.get("to") if isinstance(payload.get("to"), dict) else None):
        if not source:
            continue
        for key in SHARE_KEYS:
            value = source.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value) / 100 if value > 1 else float(value)
    to = payload.get("to")
    if isinstance(to, (int, float)) and not isinstance(to, bool):
        return float(to) / 100 if to > 1 else float(to)
    return None


def _severity(event: Event) -> str:
    kind = event.kind.lower()
    if "rollback" in kind or kind.endswith(("breach", "failed", "abort")):
        return "bad"
    if kind.startswith("trigger"):
        outcome = str(event.payload.get("outcome", event.payload.get("status", ""))).lower()
        return "bad" if outcome in ("failed", "breach", "error") or event.payload.get("breached") else "info"
    return "good" if "advance" in kind or "promote" in kind else "info"


def is_rollout_event(event: Event) -> bool:
    return event.kind.split(".", 1)[0].lower() in ROLLOUT_KINDS


def rollout_timeline(events: Iterable[Event]) -> RolloutTimeline | None:
    """Milestones and table rows from events; passing trigger checks are only counted."""
    timeline = RolloutTimeline([])
    for e in events:
        if not is_rollout_event(e):
            continue
        severity = _severity(e)
        if e.kind.startswith("trigger") and severity != "bad":
            timeline.trigger_checks += 1
            continue
        share = candidate_share(e.payload)
        timeline.milestones.append(Milestone(e.at, e.kind, e.reason or e.kind, share, severity))
        timeline.rows.append({"at": e.at, "kind": e.kind, "subject": e.subject, "actor": e.actor,
                              "reason": e.reason or "", "share": share, "severity": severity})
    return timeline if timeline.milestones else None
