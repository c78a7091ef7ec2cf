"""Read the shadow log back: answers in a time window, and incumbent/candidate pairs.

A *pair* is the answer served to the user by the incumbent and a candidate's
mirrored answer to the same request (same ``request_id``): the unit of every
side-by-side comparison (report, equivalence trigger, export as records).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from changeover.shadowlog.tables import ensure_tables, shadow_log
from changeover.store import Store
from changeover.store.events import aware

TIMEOUT_ERRORS = ("timeout",)
MALFORMED_ERRORS = ("malformed",)
_CHUNK = 500  # request ids per IN (...) list


@dataclass(frozen=True, slots=True)
class Answer:
    """One model's answer to one request, as logged."""

    request_id: str
    model: str
    role: str
    request_type: str
    subject: str | None
    at: datetime
    stage: int
    status: int | None
    error: str | None
    latency_ms: float | None
    ttft_ms: float | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    refusal: bool | None
    text: str | None
    request: dict[str, Any] | None = None
    tokens_estimated: bool | None = None  # the counts are characters / 4 (the upstream gave no usage)
    prompt_version: str | None = None  # the registry variant the request was sent with (None: as sent)
    deprecation: dict[str, Any] | None = None  # the upstream's deprecation notice on this answer (shadow.rows)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def timed_out(self) -> bool:
        return (self.error or "").startswith(TIMEOUT_ERRORS)

    @property
    def malformed(self) -> bool:
        return (self.error or "").startswith(MALFORMED_ERRORS)


# the Answer fields read from the shadow log column of the same name, unchanged
_LOGGED_AS_IS = (
    "request_id",
    "model",
    "role",
    "request_type",
    "subject",
    "stage",
    "status",
    "error",
    "latency_ms",
    "ttft_ms",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "refusal",
    "tokens_estimated",
    "prompt_version",
    "deprecation",
)


@dataclass(frozen=True, slots=True)
class Pair:
    incumbent: Answer
    candidate: Answer


def load_answers(
    store: Store,
    since: datetime | None = None,
    models: Iterable[str] | None = None,
    with_request: bool = False,
    request_ids: Collection[str] | None = None,
) -> list[Answer]:
    """Answers logged since ``since`` (oldest first), optionally only for ``models`` and ``request_ids``."""
    ensure_tables(store)
    c = shadow_log.c
    cols = [c.id, c.at, c.response_text.label("text"), *(c[name] for name in _LOGGED_AS_IS)]
    if with_request:
        cols.append(c.request)
    q = select(*cols).order_by(c.id)
    if since is not None:
        q = q.where(c.at >= since)
    if models is not None:
        q = q.where(c.model.in_(list(models)))
    with store.engine.connect() as conn:
        if request_ids is None:
            rows = conn.execute(q).all()
        else:  # in bounded chunks (a database caps a statement's parameters), back in log order
            ids = sorted(set(request_ids))
            chunks = [
                conn.execute(q.where(c.request_id.in_(ids[i : i + _CHUNK]))).all() for i in range(0, len(ids), _CHUNK)
            ]
            rows = sorted((r for chunk in chunks for r in chunk), key=lambda r: r.id)
    return [
        Answer(
            **{name: r._mapping[name] for name in _LOGGED_AS_IS},
            at=aware(r.at),
            text=r.text,
            request=r.request if with_request else None,
        )
        for r in rows
    ]


def pairs(answers: Iterable[Answer], incumbent: str, candidate: str) -> list[Pair]:
    """Served incumbent answers matched with the candidate's mirrored answer to the same request."""
    served: dict[str, Answer] = {}
    mirrored: list[Answer] = []
    for a in answers:
        if a.model == incumbent and a.role == "served":
            served[a.request_id] = a
        elif a.model == candidate and a.role == "mirror":
            mirrored.append(a)
    return [Pair(served[m.request_id], m) for m in mirrored if m.request_id in served]


def reverse_pairs(answers: list[Answer], incumbent: str, candidate: str) -> list[Pair]:
    """The hold's pairs: the candidate's served answers with the incumbent's reverse-mirrored answer."""
    served = {a.request_id: a for a in answers if a.model == candidate and a.role == "served"}
    return [
        Pair(incumbent=a, candidate=served[a.request_id])
        for a in answers
        if a.model == incumbent and a.role == "mirror" and a.request_id in served
    ]
