"""The admin settles a flagged or disputed response: a verdict of its own kind, never an overwrite.

A resolution stores, per dimension, one ``labels`` row with ``source`` =
'review' (annotator: the admin) for each verdict in force on that response, each
``supersedes`` one of them; so afterwards exactly one verdict is in force -- the
admin's -- and every earlier row is kept. (With no verdict in force it is one
row superseding nothing.) Agreement between annotators is measured on their own
verdicts, without these rows, so settling a disagreement does not hide it from
the kappa. A flag can also be dismissed without a verdict. Every resolution
and dismissal is an event (``labeling.review.resolved`` /
``labeling.review.dismissed``) with who, why, and what it superseded; the
review page marks a flag settled from those events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from changeover.labeling.submit import (
    CLIENT_ID,
    MAX_CLIENT_ID,
    ConflictError,
    LabelRequestError,
    bounded,
    row_client_id,
    shown,
)
from changeover.labeling.tasks import Task
from changeover.store import Store
from changeover.store.events import append_event, list_events, now
from changeover.store.responses import LABEL, REVIEW, in_force
from changeover.store.schema import labels

MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the admin sends for one response."""

    client_id: str
    reason: str
    verdicts: dict[str, int]  # empty: dismiss the flag
    flag: str | None  # the flag submission this settles, if any


def parse_resolution(body: Any, dimensions: list[str]) -> Resolution:
    """Validate ``{"client_id", "task", "reason", "verdicts"?: {dim: 1|0}, "flag"?: "<client id>"}``."""
    if not isinstance(body, dict):
        raise LabelRequestError("the body must be a JSON object with 'client_id', 'task' and 'reason'")
    client_id = bounded(body, "client_id", MAX_CLIENT_ID, "a client-generated id, e.g. a UUID")
    if not client_id or not CLIENT_ID.match(client_id):
        raise LabelRequestError("field 'client_id': a client-generated id of 8-100 characters, e.g. a UUID")
    reason = (bounded(body, "reason", MAX_REASON, "why it is settled this way") or "").strip()
    if not reason:
        raise LabelRequestError("field 'reason': say why (it is kept in the event log)")
    raw = body.get("verdicts") or {}
    if not isinstance(raw, dict) or len(raw) > len(dimensions):
        raise LabelRequestError("field 'verdicts': an object {dimension: 1 or 0}, one per dimension at most")
    verdicts: dict[str, int] = {}
    for dim, value in raw.items():
        if dim not in dimensions:
            raise LabelRequestError(f"field 'verdicts.{shown(dim)[1:-1]}': unknown dimension")
        if isinstance(value, bool) or value not in (0, 1):
            raise LabelRequestError(f"field 'verdicts.{dim}': 1 (acceptable) or 0 (not), got {shown(value)}")
        verdicts[dim] = int(value)
    flag = bounded(body, "flag", MAX_CLIENT_ID, "the client_id of the flag this settles")
    if not verdicts and not flag:
        raise LabelRequestError("give 'verdicts' to settle the response, or 'flag' to dismiss a flag without one")
    return Resolution(client_id, reason, verdicts, flag)


def resolve(store: Store, admin: str, task: Task, res: Resolution) -> dict[str, Any]:
    """Store the resolution (once per ``client_id``) and its event, in one transaction."""
    with store.engine.begin() as conn:
        first_rows = [row_client_id(res.client_id, d) for d in res.verdicts]
        seen = (
            conn.execute(select(labels.c.id).where(labels.c.client_id.in_(first_rows))).first() if first_rows else None
        )
        if seen is not None or _event_for(store, res.client_id):
            raise ConflictError(f"resolution {res.client_id!r} was stored already; use a new client_id")
        rows = conn.execute(
            select(labels).where(labels.c.item == task.item, labels.c.model == task.model).order_by(labels.c.id)
        ).all()
        current = in_force(rows)
        at, superseded, ids = now(), [], []
        for dim, value in res.verdicts.items():
            targets = [r.id for (_i, _m, d, _a), r in current.items() if d == dim] or [None]
            for k, target in enumerate(targets):
                row_id = conn.execute(
                    insert(labels).values(
                        item=task.item,
                        model=task.model,
                        dimension=dim,
                        value=value,
                        annotator=admin,
                        created_at=at,
                        client_id=row_client_id(res.client_id, dim) + (f"+{k}" if k else ""),
                        supersedes=target,
                        response_hash=task.response_hash,
                        status=LABEL,
                        source=REVIEW,
                        note=res.reason,
                    )
                ).inserted_primary_key[0]
                ids.append(int(row_id))
                if target is not None:
                    superseded.append(int(target))
        kind = "labeling.review.resolved" if res.verdicts else "labeling.review.dismissed"
        payload = {
            "client_id": res.client_id,
            "task": task.id,
            "item": task.item,
            "verdicts": res.verdicts,
            "superseded": superseded,
            "label_ids": ids,
            "flag": res.flag,
        }
        append_event(conn, kind, f"labeling:{task.item}", admin, res.reason, payload)
    return payload


def _event_for(store: Store, client_id: str) -> bool:
    return any(e.payload.get("client_id") == client_id for e in list_events(store, kind_prefix="labeling.review."))


def settled_flags(store: Store) -> dict[str, dict[str, Any]]:
    """Flag submission id -> the event that settled or dismissed it (who, why, how)."""
    out = {}
    for e in list_events(store, kind_prefix="labeling.review."):
        flag = e.payload.get("flag")
        if flag:
            out[flag] = {"kind": e.kind.rsplit(".", 1)[1], "actor": e.actor, "reason": e.reason, "at": e.at}
    return out
