"""The append-only event log: every state change of a migration, with who, why, when.

Events are only ever inserted. Flag flips, stage advances, rollbacks, trigger
evaluations and re-embedding milestones all land here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from changeover.store.engine import Store
from changeover.store.schema import events


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    at: datetime
    kind: str
    subject: str
    actor: str
    reason: str | None
    payload: dict[str, Any]


def now() -> datetime:
    return datetime.now(UTC)


def append_event(
    conn: Connection,
    kind: str,
    subject: str,
    actor: str,
    reason: str | None = None,
    payload: dict[str, Any] | None = None,
) -> int:
    """Insert one event inside the caller's transaction; returns its id."""
    result = conn.execute(
        insert(events).values(at=now(), kind=kind, subject=subject, actor=actor, reason=reason, payload=payload or {})
    )
    return int(result.inserted_primary_key[0])


def record_event(
    store: Store, kind: str, subject: str, actor: str, reason: str | None = None, payload: dict[str, Any] | None = None
) -> int:
    """Append one event in its own transaction."""
    with store.engine.begin() as conn:
        return append_event(conn, kind, subject, actor, reason, payload)


def list_events(
    store: Store,
    subject: str | None = None,
    kind_prefix: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[Event]:
    """Events oldest first, optionally filtered by subject, kind prefix and time."""
    q = select(events).order_by(events.c.id)
    if subject is not None:
        q = q.where(events.c.subject == subject)
    if kind_prefix is not None:
        q = q.where(events.c.kind.startswith(kind_prefix))
    if since is not None:
        q = q.where(events.c.at >= since)
    if limit is not None:
        q = q.limit(limit)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    return [Event(r.id, aware(r.at), r.kind, r.subject, r.actor, r.reason, r.payload or {}) for r in rows]


def aware(at: datetime) -> datetime:
    """A datetime read back from the store, made timezone-aware (SQLite returns naive UTC)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
