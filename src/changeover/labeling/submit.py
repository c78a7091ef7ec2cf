"""Writing verdicts: one submission (a response's verdicts, a skip or a flag) becomes
one ``labels`` row per dimension, in one transaction.

Submissions are idempotent by their client-generated id: sending the same one
twice stores it once and answers the same. A label is never overwritten; a
correction is a new submission that names the one it corrects, and each of
its rows ``supersedes`` the earlier row of the same dimension.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from changeover.errors import ChangeoverError, LimitExceeded
from changeover.labeling.gold import GOLD
from changeover.labeling.queue import finish_claim, release_claim
from changeover.labeling.tasks import Task
from changeover.store import Store
from changeover.store.events import now
from changeover.store.schema import labels

STATUSES = ("label", "skip", "flag")  # what a client may send
VERDICTS = ("label", GOLD)  # stored statuses that carry a verdict (a verdict on a gold response is 'gold')
CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{7,99}$")
MAX_CLIENT_ID = 100
MAX_NOTE = 2000
MAX_TASK = 64  # task ids are 20 hex characters
MAX_ITEM = 512  # labels.item
MAX_MODEL = 256  # labels.model


class LabelRequestError(ChangeoverError):
    """A label request the app cannot accept; ``status`` is the HTTP status to answer with."""

    status = 422


class TooLongError(LabelRequestError, LimitExceeded):
    """A field longer than the app accepts: a 400 naming the field and its limit."""

    status = 400


class UnknownTaskError(LabelRequestError):
    status = 404


class ConflictError(LabelRequestError):
    status = 409


class ForbiddenError(LabelRequestError):
    status = 403


@dataclass(frozen=True, slots=True)
class Submission:
    """What an annotator sends for one response."""

    client_id: str
    status: str = "label"
    verdicts: dict[str, int] = field(default_factory=dict)
    corrects: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SubmitResult:
    client_id: str
    label_ids: dict[str, int]
    duplicate: bool

    def to_json(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "label_ids": self.label_ids, "duplicate": self.duplicate}


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for echoing a client's value in an error."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded(body: dict[str, Any], name: str, limit: int, what: str) -> str | None:
    """``body[name]`` when it is absent or a string of at most ``limit`` characters (else a 400 naming it)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise LabelRequestError(f"field '{name}': {what}, got {shown(value)}")
    if len(value) > limit:
        raise TooLongError(f"field '{name}': at most {limit:,} characters ({what}); got {len(value):,}")
    return value


def parse_submission(body: Any, dimensions: list[str]) -> Submission:
    """Validate a JSON body ``{"client_id", "status"?, "verdicts"?, "corrects"?, "note"?}``."""
    if not isinstance(body, dict):
        raise LabelRequestError("the body must be a JSON object with 'client_id' and 'verdicts'")
    id_help = "a client-generated id of 8-100 characters (letters, digits, '_.:-'), e.g. a UUID"
    client_id = bounded(body, "client_id", MAX_CLIENT_ID, id_help)
    if client_id is None or not CLIENT_ID.match(client_id):
        raise LabelRequestError(f"field 'client_id': give {id_help}; resending it never stores twice")
    status = body.get("status", "label")
    if status not in STATUSES:
        raise LabelRequestError(f"field 'status': must be one of {', '.join(STATUSES)}, got {shown(status)}")
    raw = body.get("verdicts") or {}
    if not isinstance(raw, dict):
        raise LabelRequestError("field 'verdicts' must be an object {dimension: 1 or 0}")
    if len(raw) > len(dimensions):
        raise TooLongError(f"field 'verdicts': at most {len(dimensions)} entries, one per dimension; got {len(raw):,}")
    verdicts: dict[str, int] = {}
    for dim, value in raw.items():
        if dim not in dimensions:
            raise LabelRequestError(
                f"field 'verdicts.{shown(dim)[1:-1]}': unknown dimension; this app labels {', '.join(dimensions)}"
            )
        if isinstance(value, bool) or value not in (0, 1):
            raise LabelRequestError(f"field 'verdicts.{dim}': 1 (acceptable) or 0 (not), got {shown(value)}")
        verdicts[dim] = int(value)
    if status == "label":
        missing = [d for d in dimensions if d not in verdicts]
        if missing:
            raise LabelRequestError(
                f"field 'verdicts': missing {', '.join(missing)}; give every dimension "
                "a 1 or 0, or send status 'skip' or 'flag'"
            )
    elif verdicts:
        raise LabelRequestError(f"field 'verdicts': a '{status}' carries no verdicts; leave it out")
    corrects = bounded(body, "corrects", MAX_CLIENT_ID, "the client_id of the submission this one corrects")
    if corrects is not None and not CLIENT_ID.match(corrects):
        raise LabelRequestError("field 'corrects': the client_id of the submission this one corrects")
    if corrects is not None and status == "skip":
        raise LabelRequestError(
            "field 'corrects': a skip cannot correct a label (it would withdraw your verdict); "
            "to keep the verdict send nothing, to change it send new verdicts"
        )
    note = bounded(body, "note", MAX_NOTE, "text: why it is flagged or skipped, or a comment")
    return Submission(client_id, status, verdicts, corrects, note.strip() or None if note else None)


def row_client_id(client_id: str, dimension: str) -> str:
    return f"{client_id}/{dimension}"


def _existing(conn: Connection, client_id: str, dimensions: list[str]) -> list[Any]:
    ids = [row_client_id(client_id, d) for d in dimensions]
    return conn.execute(select(labels).where(labels.c.client_id.in_(ids))).all()


def _same(rows: list[Any], annotator: str, task: Task, sub: Submission) -> bool:
    return all(
        r.annotator == annotator
        and r.item == task.item
        and r.model == task.model
        and r.status == sub.status
        and r.value == sub.verdicts.get(r.dimension)
        and r.note == sub.note
        for r in rows
    )


def _duplicate(rows: list[Any], annotator: str, task: Task, sub: Submission) -> SubmitResult:
    if not _same(rows, annotator, task, sub):
        raise ConflictError(
            f"client_id {sub.client_id!r} was already used for a different submission; "
            "generate a new id for every new submission"
        )
    return SubmitResult(sub.client_id, {r.dimension: int(r.id) for r in rows}, duplicate=True)


def _superseded(conn: Connection, annotator: str, task: Task, corrects: str, dimensions: list[str]) -> dict[str, int]:
    rows = _existing(conn, corrects, dimensions)
    if not rows:
        raise UnknownTaskError(f"field 'corrects': no submission {corrects!r} to correct")
    if any(r.annotator != annotator for r in rows):
        raise ForbiddenError(
            f"field 'corrects': submission {corrects!r} is another annotator's; you can only correct your own labels"
        )
    if any((r.item, r.model) != task.key for r in rows):
        raise LabelRequestError(f"field 'corrects': submission {corrects!r} is about another response")
    return {r.dimension: int(r.id) for r in rows}


def submit(
    store: Store, annotator: str, task: Task, dimensions: list[str], sub: Submission, source: str = "app"
) -> SubmitResult:
    """Store a submission (once) and settle the annotator's claim on the task, in one transaction.

    A verdict keeps the annotator's slot; a skip or a flag gives it back.
    """
    for attempt in range(2):
        try:
            with store.engine.begin() as conn:
                rows = _existing(conn, sub.client_id, dimensions)
                if rows:
                    return _duplicate(rows, annotator, task, sub)
                supersedes = _superseded(conn, annotator, task, sub.corrects, dimensions) if sub.corrects else {}
                if sub.status not in VERDICTS:
                    supersedes = {}  # a flag on a corrected response adds a note; the verdict stays in force
                # the claim first: a verdict keeps (or, without a claim, takes) its slot, before its own rows count
                if sub.status in VERDICTS:
                    finish_claim(conn, task, annotator)
                else:
                    release_claim(conn, task, annotator)
                at = now()
                ids: dict[str, int] = {}
                for dim in dimensions:
                    result = conn.execute(
                        insert(labels).values(
                            item=task.item,
                            model=task.model,
                            dimension=dim,
                            value=sub.verdicts.get(dim),
                            annotator=annotator,
                            created_at=at,
                            client_id=row_client_id(sub.client_id, dim),
                            supersedes=supersedes.get(dim),
                            response_hash=task.response_hash,
                            status=sub.status,
                            source=source,
                            note=sub.note,
                        )
                    )
                    ids[dim] = int(result.inserted_primary_key[0])
                return SubmitResult(sub.client_id, ids, duplicate=False)
        except IntegrityError:
            if attempt:  # pragma: no cover - a third party keeps colliding
                raise
            # the same client_id arrived twice at once: the other request stored it; answer as a duplicate
    raise AssertionError("unreachable")  # pragma: no cover
