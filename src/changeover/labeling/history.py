"""An annotator's own recent submissions: what 'undo' (correct) can reach, newest first.

One entry per submission (its rows, one per dimension, share a client id), made
in the app by this annotator and not yet superseded by a correction; a
correction is itself an entry (``corrects`` set). Correcting any entry stores a
new submission whose rows supersede that entry's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from changeover.labeling.gold import GOLD
from changeover.labeling.tasks import Catalogue, Task
from changeover.store import Store
from changeover.store.events import aware
from changeover.store.schema import labels

HISTORY = 20  # submissions an annotator can go back through


@dataclass(frozen=True, slots=True)
class Past:
    """One of the annotator's submissions still in force."""

    task: Task
    client_id: str
    status: str
    verdicts: dict[str, int | None]
    note: str | None
    at: datetime
    corrects: bool  # this submission is itself a correction

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.id,
            "client_id": self.client_id,
            "status": self.status,
            "verdicts": dict(self.verdicts),
            "note": self.note,
            "at": self.at.isoformat(),
            "corrects": self.corrects,
        }


def history(store: Store, catalogue: Catalogue, annotator: str, limit: int = HISTORY) -> list[Past]:
    """The annotator's latest app submissions not superseded, newest first (at most ``limit``)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(labels).where(labels.c.annotator == annotator, labels.c.source == "app").order_by(labels.c.id.desc())
        ).all()
    superseded = {r.supersedes for r in rows if r.supersedes is not None}
    groups: dict[str, list[Any]] = {}
    for r in rows:
        if not r.client_id or "/" not in r.client_id:
            continue
        groups.setdefault(r.client_id.rsplit("/", 1)[0], []).append(r)
    out = []
    for client_id, group in groups.items():
        if any(r.id in superseded for r in group):
            continue
        first = group[0]
        task = catalogue.by_key.get((first.item, first.model))
        if task is None:
            continue
        verdicts = {r.dimension: r.value for r in group}
        corrects = any(r.supersedes is not None for r in group)
        status = "label" if first.status == GOLD else first.status  # blind: a gold check is a label to them
        out.append(Past(task, client_id, status, verdicts, first.note, aware(first.created_at), corrects))
        if len(out) >= limit:
            break
    return out
