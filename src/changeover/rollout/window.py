"""The controller's sliding window, read from the shadow log in SQL: counts, rates and latency percentiles.

Each run counts the window's answers in the database (one aggregate query per
side) and reads the pairs' keys (request id and time, never the texts), so an
analysis run costs the same whatever the answers' length. Latency percentiles
are PostgreSQL's ``percentile_cont`` (the same linear interpolation as
``numpy.percentile``); SQLite has none, so there the latencies alone (one float
per answer) are read and ``measure.percentiles`` computes them. The pairs'
texts are read only when a measure asks for them (``Window.pairs``), and
``Window.pairs_of`` reads those of a few requests only (``measure.WordEquivalence``
reads each pair's texts once over the controller's runs).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.sql import Select

from changeover.rollout.measure import LATENCY_PERCENTILES, PairKey, Tally, Window, percentiles
from changeover.shadowlog.answers import Pair, load_answers, pairs, reverse_pairs
from changeover.shadowlog.tables import shadow_log
from changeover.store import Store
from changeover.store.events import aware

_c = shadow_log.c


class HoldWindow(Window):
    """The hold's window: the baseline is the incumbent's reverse-mirrored answers; its fallback answers
    (to requests the candidate failed) are kept apart, out of the baseline (only counted)."""

    __slots__ = ("fallbacks",)

    def __init__(self, *args, fallbacks: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.fallbacks = fallbacks


def _count(cond: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def tally(store: Store, side: ColumnElement[bool]) -> Tally:
    """The answers matching ``side`` (a model, a role, the window's start), counted in SQL."""
    ok = _c.error.is_(None)
    timed = and_(ok, _c.latency_ms.is_not(None))
    cols = [
        func.count().label("answers"),
        _count(_c.error.is_not(None)).label("errors"),
        _count(_c.error.startswith("timeout", autoescape=True)).label("timeouts"),
        _count(_c.error.startswith("malformed", autoescape=True)).label("malformed"),
        _count(and_(ok, _c.refusal.is_(True))).label("refusals"),
        _count(timed).label("timed"),
    ]
    postgres = store.dialect == "postgresql"
    if postgres:
        cols += [
            func.percentile_cont(q / 100).within_group(_c.latency_ms).filter(timed).label(f"p{q}")
            for q in LATENCY_PERCENTILES
        ]
    with store.engine.connect() as conn:
        r = conn.execute(select(*cols).where(side)).one()
        if postgres:
            latency = {q: float(v) for q in LATENCY_PERCENTILES if (v := r._mapping[f"p{q}"]) is not None}
        else:
            latency = percentiles(conn.execute(select(_c.latency_ms).where(side, timed)).scalars().all())
    return Tally(
        answers=int(r.answers),
        errors=int(r.errors),
        timeouts=int(r.timeouts),
        malformed=int(r.malformed),
        refusals=int(r.refusals),
        timed=int(r.timed),
        latency=latency,
    )


def _pair_query(start: datetime, served: str, mirrored: str, incumbent_served: bool) -> Select:
    """Keys of the pairs: ``served``'s served answer with ``mirrored``'s mirror to the same request, both
    since ``start``, in the order the mirrored answers were logged (as ``shadowlog.answers.pairs``)."""
    s, m = shadow_log.alias("s"), shadow_log.alias("m")
    inc = s if incumbent_served else m  # the incumbent's side of the pair gives the key's time
    return (
        select(s.c.request_id, inc.c.at, m.c.id)
        .join(m, and_(m.c.request_id == s.c.request_id, m.c.model == mirrored, m.c.role == "mirror"))
        .where(s.c.model == served, s.c.role == "served", s.c.at >= start, m.c.at >= start)
        .order_by(m.c.id)
    )


def window_from_store(store: Store, incumbent: str, candidate: str, start: datetime, reverse: bool = False) -> Window:
    """The answers since ``start``, counted; ``reverse`` (the hold): the incumbent's baseline is its
    reverse-mirrored answers only (it serves nobody; its fallbacks answer the requests the candidate
    failed, a biased sample) and the pairs are the reverse-mirrored ones."""
    since = _c.at >= start
    candidate_side = and_(since, _c.model == candidate)
    baseline_role = "mirror" if reverse else "served"
    incumbent_side = and_(since, _c.model == incumbent, _c.role == baseline_role)
    q = _pair_query(start, candidate, incumbent, False) if reverse else _pair_query(start, incumbent, candidate, True)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    keys = [PairKey(r.request_id, aware(r.at)) for r in rows]
    # every pair's id, not just the ends: a late-committing batch on PostgreSQL can add an interior pair
    # while the window's start drops another, leaving count and ends unchanged
    version = (len(rows), hash(tuple(r.id for r in rows)))

    def load(request_ids: Collection[str] | None) -> Sequence[Pair]:
        answers = load_answers(store, since=start, models=[incumbent, candidate], request_ids=request_ids)
        return reverse_pairs(answers, incumbent, candidate) if reverse else pairs(answers, incumbent, candidate)

    parts = (tally(store, candidate_side), tally(store, incumbent_side), keys, load, version)
    if reverse:
        fallback = and_(since, _c.model == incumbent, _c.role == "fallback")
        with store.engine.connect() as conn:
            fallbacks = int(conn.execute(select(func.count()).where(fallback)).scalar_one())
        return HoldWindow(*parts, fallbacks=fallbacks)
    return Window(*parts)
