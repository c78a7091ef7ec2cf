"""The admin's review list: every flagged response with its note (and every skip with its reason),
and every response on which annotators' verdicts in force disagree, side by side.

A flag is a submission without a verdict that asks the team to look; its note
says why. This list is where those notes are read: one entry per flag
submission (the rows of its dimensions are one flag), newest first, with the
response as the annotator saw it (never the model's name) and the verdicts in
force on it now.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from changeover.labeling.resolve import settled_flags
from changeover.labeling.tasks import Catalogue, Task
from changeover.store import Store
from changeover.store.events import aware
from changeover.store.responses import all_labels, in_force


@dataclass(frozen=True, slots=True)
class Flagged:
    """One flag (or skip) submission."""

    status: str  # flag | skip
    submission: str  # the flag's client id (what a resolution names)
    task: Task | None  # None when the response is no longer in the catalogue
    item: str
    annotator: str
    at: datetime
    note: str | None
    verdicts: dict[str, Counter[int]] = field(default_factory=dict)  # dimension -> {1: n, 0: n} in force now
    settled: dict[str, Any] | None = None  # the resolution or dismissal event: kind, actor, reason, at

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "submission": self.submission,
            "task": self.task.id if self.task else None,
            "item": self.item,
            "annotator": self.annotator,
            "at": self.at.isoformat(),
            "note": self.note,
            "verdicts": {d: {"acceptable": c[1], "not_acceptable": c[0]} for d, c in self.verdicts.items()},
            "settled": {**self.settled, "at": self.settled["at"].isoformat()} if self.settled else None,
        }


def flagged(store: Store, catalogue: Catalogue, status: str = "flag") -> list[Flagged]:
    """Flag (or skip) submissions, newest first, each with the verdicts in force on its response."""
    rows = all_labels(store)
    settled = settled_flags(store)
    counting: dict[tuple[str, str], dict[str, Counter[int]]] = {}
    for (item, model, dim, _annotator), row in in_force(rows).items():
        counting.setdefault((item, model), {}).setdefault(dim, Counter())[int(row.value)] += 1
    seen: set[str] = set()
    out = []
    for r in reversed(rows):
        if r.status != status:
            continue
        submission = (r.client_id or f"row-{r.id}").rsplit("/", 1)[0]
        if submission in seen:
            continue
        seen.add(submission)
        task = catalogue.by_key.get((r.item, r.model))
        verdicts = counting.get((r.item, r.model), {})
        at = aware(r.created_at)
        out.append(
            Flagged(r.status, submission, task, r.item, r.annotator, at, r.note, verdicts, settled.get(submission))
        )
    return out


@dataclass(frozen=True, slots=True)
class Disagreement:
    """One response and dimension on which the verdicts in force differ: who said what."""

    task: Task | None
    item: str
    dimension: str
    verdicts: dict[str, int]  # annotator -> 1 / 0

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.id if self.task else None,
            "item": self.item,
            "dimension": self.dimension,
            "verdicts": dict(self.verdicts),
        }


def disagreements(store: Store, catalogue: Catalogue) -> list[Disagreement]:
    """Responses whose verdicts in force (one per annotator) are not all the same, per dimension."""
    by_unit: dict[tuple[str, str, str], dict[str, int]] = {}
    for (item, model, dim, annotator), row in in_force(all_labels(store)).items():
        by_unit.setdefault((item, model, dim), {})[annotator] = int(row.value)
    out = [
        Disagreement(catalogue.by_key.get((item, model)), item, dim, dict(sorted(v.items())))
        for (item, model, dim), v in by_unit.items()
        if len(set(v.values())) > 1
    ]
    return sorted(out, key=lambda d: (d.item, d.dimension, d.task.id if d.task else ""))
