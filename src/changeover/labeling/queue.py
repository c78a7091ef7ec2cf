"""Who labels what next: the queue order and the claims that keep annotators apart.

Order: responses still lacking a second annotator come first (agreement is
measured on them), then by the assessment's value of a label (``next_labels``
rank, cut into windows of ``rank_window`` nearly equal tasks), and within a
window in an order shuffled per annotator, so annotators see models and items
in different orders and do not all contend for the same response.

The queue reads the labels and the claims in one query (one snapshot on
SQLite and PostgreSQL alike), so a label written meanwhile is either seen with
its claim or not at all. A claim takes one slot of the response: an insert that
does nothing when the slot is taken (a compare-and-set on the unique (item,
model, slot) key), checked in the same transaction against the verdicts
already given. A submitted verdict keeps its slot (the claim becomes done), so
a response for one annotator has exactly one slot and never reaches a second
one, however many annotators ask at once; an open claim that expires (the
annotator left) frees its slot.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Container
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, DateTime, Row, and_, cast, delete, literal, null, select, union_all, update

from changeover.labeling.tables import claims, insert_once
from changeover.labeling.tasks import Catalogue, Task, TaskKey, unit_hash
from changeover.store import Store
from changeover.store.events import aware, now
from changeover.store.schema import labels

_MAX_CLAIM_TRIES = 64
_CLAIM = "claim"


@dataclass(frozen=True, slots=True)
class QueueState:
    """What the labels table and the claims say at one moment."""

    givers: dict[TaskKey, set[str]] = field(default_factory=dict)  # annotators with a verdict, per response
    touched: dict[str, set[TaskKey]] = field(default_factory=dict)  # responses each annotator labelled/skipped/flagged
    claimed: dict[TaskKey, set[str]] = field(default_factory=dict)  # annotators holding a slot (open or done)

    @property
    def labelled(self) -> Counter[TaskKey]:
        """Distinct annotators with a verdict, per response."""
        return Counter({k: len(v) for k, v in self.givers.items()})

    def remaining(self, task: Task) -> int:
        """Verdicts this response still wants (never below 0)."""
        return max(0, task.needed - task.external - len(self.givers.get(task.key, ())))

    def open_for(self, task: Task, annotator: str) -> bool:
        """Is there a slot left for ``annotator`` (verdicts given and slots held by others count)?"""
        others = (self.givers.get(task.key, set()) | self.claimed.get(task.key, set())) - {annotator}
        return max(0, task.external) + len(others) < task.needed


def read_state(store: Store, at: datetime | None = None) -> QueueState:
    """Labels and claims, read in ONE query: a consistent snapshot on either database."""
    at = at or now()
    q = union_all(
        select(claims.c.item, claims.c.model, claims.c.annotator, literal(_CLAIM).label("status"), claims.c.expires_at),
        select(
            labels.c.item,
            labels.c.model,
            labels.c.annotator,
            labels.c.status,
            cast(null(), DateTime(timezone=True)).label("expires_at"),
        ).distinct(),
    )
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    givers: dict[TaskKey, set[str]] = defaultdict(set)
    touched: dict[str, set[TaskKey]] = defaultdict(set)
    claimed: dict[TaskKey, set[str]] = defaultdict(set)
    for r in rows:
        key = (r.item, r.model)
        if r.status == _CLAIM:
            if r.expires_at is None or aware(r.expires_at) > at:  # done, or open and not expired
                claimed[key].add(r.annotator)
            continue
        touched[r.annotator].add(key)
        if r.status == "label":
            givers[key].add(r.annotator)
    return QueueState(dict(givers), dict(touched), dict(claimed))


def order_key(
    task: Task, annotator: str, rank: dict[TaskKey, int], window: int, state: QueueState
) -> tuple[int, float, float]:
    """Sort key: half-done double labels first, then value window, then a per-annotator shuffle."""
    started = 0 if state.givers.get(task.key) else 1  # a second annotator's verdict feeds the kappa
    r = rank.get(task.key)
    bucket = float(r // window) if r is not None else float("inf")
    return (started, bucket, unit_hash(annotator, task.item, task.model))


def candidates(
    catalogue: Catalogue,
    annotator: str,
    rank: dict[TaskKey, int],
    window: int,
    state: QueueState,
    exclude: Container[TaskKey] = (),
) -> list[Task]:
    """Responses this annotator may take, best first (never those in ``exclude``: the gold ones)."""
    mine = state.touched.get(annotator, set())
    out = [
        t
        for t in catalogue.by_key.values()
        if t.key not in mine and t.key not in exclude and state.open_for(t, annotator)
    ]
    out.sort(key=lambda t: order_key(t, annotator, rank, window, state))
    return out


def with_second_labels(catalogue: Catalogue, state: QueueState, recheck: frozenset[str]) -> Catalogue:
    """The catalogue with a second annotator wanted on every single-label response judged by one of
    ``recheck`` (annotators whose gold agreement is low): their verdict is checked by someone else."""
    if not recheck:
        return catalogue
    second = {k for k, who in state.givers.items() if who & recheck}
    if not second:
        return catalogue
    return Catalogue(replace(t, needed=2) if t.key in second and t.needed < 2 else t for t in catalogue.by_key.values())


def _occupants(conn: Connection, task: Task) -> tuple[set[str], set[int]]:
    """Inside a transaction: annotators with a verdict or a slot on ``task``, and the slots taken."""
    givers = conn.execute(
        select(labels.c.annotator)
        .where(labels.c.item == task.item, labels.c.model == task.model, labels.c.status == "label")
        .distinct()
    ).scalars()
    rows = conn.execute(
        select(claims.c.annotator, claims.c.slot).where(claims.c.item == task.item, claims.c.model == task.model)
    ).all()
    return set(givers) | {r.annotator for r in rows}, {int(r.slot) for r in rows}


def _slots(task: Task) -> range:
    return range(max(0, task.needed - max(0, task.external)))


class _Taken(Exception):
    """The response filled up between reading the state and claiming it (rolls the claim back)."""


def take_slot(conn: Connection, task: Task, annotator: str, expires_at: datetime | None) -> bool:
    """Inside a transaction: give ``annotator`` a free slot of ``task`` (open until ``expires_at``,
    or done when None). False when no slot is free or the annotator already has an open claim."""
    occupants, taken = _occupants(conn, task)
    if annotator in occupants or max(0, task.external) + len(occupants) >= task.needed:
        return False
    for slot in _slots(task):
        if slot in taken:
            continue
        values = {"item": task.item, "model": task.model, "slot": slot, "annotator": annotator}
        values |= {"open_by": annotator if expires_at else None, "expires_at": expires_at}
        if insert_once(conn, claims, **values):
            return True
        if expires_at is not None and _open_claim(conn, annotator) is not None:
            return False  # a parallel request of this annotator claimed another response
    return False


_GOLD_SLOTS = range(-1, -100_000, -1)


def take_gold_slot(conn: Connection, task: Task, annotator: str, expires_at: datetime) -> bool:
    """Inside a transaction: an open claim of gold response ``task`` for ``annotator``. Gold slots are
    negative and unlimited (every annotator may judge a gold response, each once); False when this
    annotator holds or held one on it, or already has an open claim elsewhere."""
    mine = select(claims.c.slot).where(
        claims.c.item == task.item, claims.c.model == task.model, claims.c.annotator == annotator
    )
    if conn.execute(mine).first() is not None:
        return False
    for slot in _GOLD_SLOTS:
        values = {"item": task.item, "model": task.model, "slot": slot, "annotator": annotator}
        if insert_once(conn, claims, **values, open_by=annotator, expires_at=expires_at):
            return True
        if _open_claim(conn, annotator) is not None or conn.execute(mine).first() is not None:
            return False
    return False


def finish_claim(conn: Connection, task: Task, annotator: str) -> None:
    """Inside the submission's transaction: the verdict keeps the annotator's slot (a done claim).
    Without a claim (it expired, or a tool posts by item and model) a free slot is taken if any."""
    done = conn.execute(
        update(claims)
        .where(claims.c.item == task.item, claims.c.model == task.model, claims.c.annotator == annotator)
        .values(open_by=None, expires_at=None)
    ).rowcount
    if not done:
        take_slot(conn, task, annotator, None)  # none free: the late verdict is kept all the same


def release_claim(conn: Connection, task: Task, annotator: str) -> None:
    """Inside a skip's or flag's transaction: give back the annotator's open slot on ``task``."""
    conn.execute(
        delete(claims).where(
            claims.c.item == task.item,
            claims.c.model == task.model,
            claims.c.annotator == annotator,
            claims.c.open_by.is_not(None),
        )
    )


def _open_claim(conn: Connection, annotator: str) -> Row[Any] | None:
    return conn.execute(select(claims).where(claims.c.open_by == annotator)).first()


class Claims:
    """Claim, renew and release responses for annotators."""

    def __init__(self, store: Store, lease: timedelta):
        self.store = store
        self.lease = lease

    def current(self, catalogue: Catalogue, annotator: str, state: QueueState) -> Task | None:
        """The response this annotator has open (claim renewed), if still valid."""
        at = now()
        with self.store.engine.begin() as conn:
            row = _open_claim(conn, annotator)
            if row is None:
                return None
            task = catalogue.by_key.get((row.item, row.model))
            if task is None or aware(row.expires_at) <= at or task.key in state.touched.get(annotator, set()):
                conn.execute(delete(claims).where(claims.c.open_by == annotator))
                return None
            conn.execute(update(claims).where(claims.c.open_by == annotator).values(expires_at=at + self.lease))
        return task

    def claim(self, annotator: str, ranked: list[Task]) -> Task | None:
        """Claim a slot of the first of ``ranked`` that has one free; None when all are taken."""
        for task in ranked[:_MAX_CLAIM_TRIES]:
            at = now()
            try:
                with self.store.engine.begin() as conn:
                    # a write first: on SQLite the transaction holds the write lock from here on
                    conn.execute(
                        delete(claims).where(
                            and_(claims.c.item == task.item, claims.c.model == task.model, claims.c.expires_at <= at)
                        )
                    )
                    if not take_slot(conn, task, annotator, at + self.lease):
                        if _open_claim(conn, annotator) is not None:
                            return None  # this annotator claimed elsewhere at the same moment
                        continue
                    occupants, _ = _occupants(conn, task)  # a verdict imported meanwhile also counts
                    if max(0, task.external) + len(occupants) > task.needed:
                        raise _Taken
                return task
            except _Taken:
                continue
        return None

    def claim_gold(self, annotator: str, gold: list[Task]) -> Task | None:
        """Claim the first of the gold responses ``gold`` this annotator can take; None when none."""
        for task in gold[:_MAX_CLAIM_TRIES]:
            with self.store.engine.begin() as conn:
                if take_gold_slot(conn, task, annotator, now() + self.lease):
                    return task
                if _open_claim(conn, annotator) is not None:
                    return None
        return None

    def holds(self, annotator: str) -> bool:
        with self.store.engine.connect() as conn:
            return _open_claim(conn, annotator) is not None

    def release(self, annotator: str) -> None:
        """Give back every open slot of ``annotator`` (their token was revoked, or they left)."""
        with self.store.engine.begin() as conn:
            conn.execute(delete(claims).where(claims.c.open_by == annotator))
