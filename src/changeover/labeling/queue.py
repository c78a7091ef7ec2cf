"""Who labels what next: the queue order and the leases that keep annotators apart.

Order: responses still lacking a second annotator come first (agreement is
measured on them), then by the assessment's value of a label (``next_labels``
rank, cut into windows of ``rank_window`` nearly equal tasks), and within a
window in an order shuffled per annotator, so annotators see models and items
in different orders and do not all contend for the same response.

A claim inserts a lease row for one slot of the response; the unique
(item, model, slot) key makes the claim atomic across threads and processes,
so a single-label response is never held by two annotators at once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, delete, distinct, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from changeover.labeling.tables import leases
from changeover.labeling.tasks import Catalogue, Task, TaskKey, unit_hash
from changeover.store import Store
from changeover.store.events import aware, now
from changeover.store.schema import labels

_MAX_CLAIM_TRIES = 64


@dataclass(frozen=True, slots=True)
class QueueState:
    """What the labels table and the leases say right now."""

    labelled: Counter[TaskKey]  # distinct annotators with a verdict, per response
    touched: dict[str, set[TaskKey]]  # responses each annotator labelled, skipped or flagged
    held: dict[TaskKey, set[str]]  # annotators holding an unexpired lease, per response

    def remaining(self, task: Task) -> int:
        return max(0, task.needed - task.external - self.labelled[task.key])


def read_state(store: Store, at: datetime | None = None) -> QueueState:
    at = at or now()
    with store.engine.connect() as conn:
        rows = conn.execute(select(labels.c.item, labels.c.model, labels.c.annotator, labels.c.status).distinct()).all()
        lease_rows = conn.execute(select(leases.c.item, leases.c.model, leases.c.annotator, leases.c.expires_at)).all()
    givers: dict[TaskKey, set[str]] = defaultdict(set)
    touched: dict[str, set[TaskKey]] = defaultdict(set)
    for r in rows:
        touched[r.annotator].add((r.item, r.model))
        if r.status == "label":
            givers[(r.item, r.model)].add(r.annotator)
    held: dict[TaskKey, set[str]] = defaultdict(set)
    for r in lease_rows:
        if aware(r.expires_at) > at:
            held[(r.item, r.model)].add(r.annotator)
    return QueueState(Counter({k: len(v) for k, v in givers.items()}), touched, held)


def order_key(
    task: Task, annotator: str, rank: dict[TaskKey, int], window: int, state: QueueState
) -> tuple[int, float, float]:
    """Sort key: half-done double labels first, then value window, then a per-annotator shuffle."""
    started = 0 if state.labelled[task.key] > 0 else 1  # a second annotator's verdict feeds the kappa
    r = rank.get(task.key)
    bucket = float(r // window) if r is not None else float("inf")
    return (started, bucket, unit_hash(annotator, task.item, task.model))


def candidates(
    catalogue: Catalogue, annotator: str, rank: dict[TaskKey, int], window: int, state: QueueState
) -> list[Task]:
    """Responses this annotator may take, best first."""
    mine = state.touched.get(annotator, set())
    out = []
    for task in catalogue.by_key.values():
        if task.key in mine:
            continue
        others = state.held.get(task.key, set()) - {annotator}
        if state.remaining(task) > len(others):
            out.append(task)
    out.sort(key=lambda t: order_key(t, annotator, rank, window, state))
    return out


class _Taken(Exception):
    """The response filled up between reading the state and claiming it."""


def _still_open(conn: Connection, task: Task) -> bool:
    """After inserting a lease: do verdicts given plus leases held still fit in what the response needs?

    A submission writes its labels and drops its lease in one transaction, so a
    claim that got a free slot also sees the labels that freed it.
    """
    givers = conn.execute(
        select(func.count(distinct(labels.c.annotator))).where(
            labels.c.item == task.item, labels.c.model == task.model, labels.c.status == "label"
        )
    ).scalar_one()
    holders = conn.execute(
        select(func.count()).select_from(leases).where(leases.c.item == task.item, leases.c.model == task.model)
    ).scalar_one()
    return task.external + givers + holders <= task.needed


class Leases:
    """Claim, renew and release responses for annotators."""

    def __init__(self, store: Store, lease: timedelta):
        self.store = store
        self.lease = lease

    def current(self, catalogue: Catalogue, annotator: str, state: QueueState) -> Task | None:
        """The response this annotator already holds (lease renewed), if still open for them."""
        at = now()
        with self.store.engine.begin() as conn:
            row = conn.execute(select(leases).where(leases.c.annotator == annotator)).first()
            if row is None:
                return None
            task = catalogue.by_key.get((row.item, row.model))
            if task is None or aware(row.expires_at) <= at or task.key in state.touched.get(annotator, set()):
                conn.execute(delete(leases).where(leases.c.annotator == annotator))
                return None
            conn.execute(update(leases).where(leases.c.annotator == annotator).values(expires_at=at + self.lease))
        return task

    def claim(self, annotator: str, ranked: list[Task]) -> Task | None:
        """Lease the first of ``ranked`` that has a free slot; None when all are taken."""
        for task in ranked[:_MAX_CLAIM_TRIES]:
            at = now()
            with self.store.engine.begin() as conn:  # an expired lease frees its slot
                conn.execute(
                    delete(leases).where(
                        and_(leases.c.item == task.item, leases.c.model == task.model, leases.c.expires_at <= at)
                    )
                )
            for slot in range(task.needed):
                try:
                    with self.store.engine.begin() as conn:
                        conn.execute(
                            insert(leases).values(
                                item=task.item,
                                model=task.model,
                                slot=slot,
                                annotator=annotator,
                                expires_at=at + self.lease,
                            )
                        )
                        if not _still_open(conn, task):
                            raise _Taken
                    return task
                except _Taken:
                    break  # judged (or fully held) since the state was read: try the next response
                except IntegrityError:
                    if self.holds(annotator):  # this annotator claimed elsewhere at the same moment
                        return None
        return None

    def holds(self, annotator: str) -> bool:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(leases.c.item).where(leases.c.annotator == annotator)).first()
        return row is not None

    def release(self, annotator: str) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(delete(leases).where(leases.c.annotator == annotator))
