"""Read the contamination ledger: which users or sessions a candidate answered, and how often."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from changeover.shadowlog.tables import contamination_ledger, ensure_tables
from changeover.store import Store


@dataclass(frozen=True, slots=True)
class Touched:
    subject: str | None  # None: requests without a sticky key (only possible at 100 %)
    requests: int
    first_at: datetime
    last_at: datetime


def contamination_subjects(store: Store, candidate: str, since: datetime | None = None) -> list[Touched]:
    """Every subject the candidate served, most requests first."""
    ensure_tables(store)
    c = contamination_ledger.c
    q = (
        select(c.subject, func.count().label("n"), func.min(c.at).label("first"), func.max(c.at).label("last"))
        .where(c.candidate == candidate)
        .group_by(c.subject)
        .order_by(func.count().desc())
    )
    if since is not None:
        q = q.where(c.at >= since)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    return [Touched(r.subject, int(r.n), r.first, r.last) for r in rows]
