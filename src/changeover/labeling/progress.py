"""The progress panel: labels done today and in total, agreement, and the live decision.

The decision lines read the assessment's JSON (issue 2's format), e.g.
"refusal, gpt4 vs llama2orig: P(non-inferior) = 0.91, about 140 more labels needed".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import select

from changeover.config import MigrationSpec
from changeover.labeling.agreement import Agreement, kappa_by_dimension
from changeover.store import Store
from changeover.store.events import aware, now
from changeover.store.responses import current_labels
from changeover.store.schema import labels


@dataclass(slots=True)
class Counts:
    """Responses one annotator (or the team) judged, skipped and flagged."""

    total: int = 0
    today: int = 0
    skipped: int = 0
    flagged: int = 0

    def to_json(self) -> dict[str, int]:
        return {"total": self.total, "today": self.today, "skipped": self.skipped, "flagged": self.flagged}


@dataclass(frozen=True, slots=True)
class DecisionLine:
    candidate: str
    dimension: str
    verdict: str | None
    p_noninferior: float | None
    labels_needed: int | None
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "dimension": self.dimension,
            "verdict": self.verdict,
            "p_noninferior": self.p_noninferior,
            "labels_needed": self.labels_needed,
            "text": self.text,
        }


def midnight_utc(at: datetime | None = None) -> datetime:
    at = at or now()
    return datetime.combine(at.astimezone(UTC).date(), time(0), tzinfo=UTC)


def count_by_annotator(store: Store) -> tuple[dict[str, Counts], Counts]:
    """Per annotator and for the team: distinct responses judged (total/today), skipped, flagged."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(labels.c.item, labels.c.model, labels.c.annotator, labels.c.status, labels.c.created_at)
        ).all()
    start = midnight_utc()
    seen: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    today: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for r in rows:
        key = (r.item, r.model)
        seen[(r.annotator, r.status)].add(key)
        if r.status == "label" and aware(r.created_at) >= start:
            today[r.annotator].add(key)
    names = sorted({a for a, _ in seen})
    per = {
        a: Counts(len(seen[(a, "label")]), len(today[a]), len(seen[(a, "skip")]), len(seen[(a, "flag")])) for a in names
    }
    team = Counts(
        sum(c.total for c in per.values()),
        sum(c.today for c in per.values()),
        sum(c.skipped for c in per.values()),
        sum(c.flagged for c in per.values()),
    )
    return per, team


def agreement(store: Store, dimensions: list[str]) -> dict[str, Agreement]:
    return kappa_by_dimension(current_labels(store), dimensions)


def decision_lines(decision: dict[str, Any] | None, spec: MigrationSpec, dimensions: list[str]) -> list[DecisionLine]:
    """One plain-words line per (candidate, dimension) from the assessment JSON."""
    if not decision:
        return []
    out = []
    for cand in spec.candidates:
        dims = (decision.get("candidates", {}).get(cand) or {}).get("dimensions", {})
        for dim in dimensions:
            entry = dims.get(dim) or {}
            p = (entry.get("overall") or {}).get("p_noninferior")
            need = (decision.get("labels_needed", {}).get(cand) or {}).get(dim)
            text = f"{dim}, {cand} vs {spec.incumbent}: "
            text += f"P(non-inferior) = {p:.2f}" if p is not None else "P(non-inferior) not available"
            if need:
                text += f", about {int(need):,} more labels needed"
            elif need == 0:
                text += ", no more labels needed"
            out.append(DecisionLine(cand, dim, entry.get("verdict"), p, need, text))
    return out
