"""Spend only what the decision needs: a request type whose decision is settled is mirrored at a keep-alive rate.

Every ``shadow.keep_alive.interval`` the gateway (a background task, never the
request path) reads the judged shadow records of the last ``window``
(``shadow.judging``, human labels merged), splits them by request type and runs
the calibrated assessment (``assessment.assess``) on each type's pairs alone. A
type is *settled* when, for every mirrored candidate, every required dimension's
call is non-inferior, superior or regression, not borderline, on a converged fit
(``assess`` already clears MCSE and convergence; this module only reads its
calls). A settled type is mirrored - and so judged - at ``keep_alive.rate``; it
goes back to the configured ``shadow.sample`` rate when a later assessment is
not settled (say the candidate started answering worse). A type's records are
re-assessed only when they or their labels changed.

Each change is an event ``shadow.keep_alive.settled`` / ``.unsettled`` (subject:
the rollout flag, payload: request type, rates, the calls and probabilities).
The state is read back from those events at start-up, so a restarted gateway
keeps the rate; a replica that reaches the state another replica already
recorded takes it without a second event. A settled event is written before the rate falls and the rate
rises before the unsettled event is written, so every request left unmirrored
for keep-alive lies inside a settled stretch of the event log: the shadow
report counts them there and prices them at the measured cost per mirrored
request (``savings``).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from changeover.config import MigrationSpec
from changeover.errors import ChangeoverError
from changeover.labeling.gold import spec_answers
from changeover.records import Record
from changeover.shadow.config import KeepAliveSettings, Settings
from changeover.shadowlog.answers import Answer
from changeover.shadowlog.export import JUDGED_SOURCE
from changeover.stats.decision import Call
from changeover.store import Store
from changeover.store.events import Event, list_events, now, record_event
from changeover.store.responses import load_records_counted

log = logging.getLogger("changeover.gateway")

EVENT = "shadow.keep_alive"
ACTOR = "gateway keep-alive"
SETTLED_CALLS = (Call.SUPERIOR, Call.NONINFERIOR, Call.REGRESSION)
CHAINS = 2


@dataclass(frozen=True, slots=True)
class TypeCall:
    """What one assessment of a request type's judged pairs said."""

    request_type: str
    settled: bool
    pairs: int
    calls: dict[str, dict[str, dict[str, Any]]]  # candidate -> required dimension -> call, probabilities, flags
    reason: str


def _dimension_call(d: Any) -> dict[str, Any]:
    return {
        "call": str(d.call),
        "p_noninferior": d.overall.p_noninferior.value,
        "p_regression": d.overall.p_regression.value,
        "borderline": d.borderline,
        "converged": d.converged,
    }


def _words(calls: dict[str, dict[str, dict[str, Any]]]) -> str:
    return "; ".join(
        f"{c} {v['call']} on {d} (P(non-inferior) {v['p_noninferior']:.3f}, P(regression) {v['p_regression']:.3f}"
        + (", borderline" if v["borderline"] else "")
        + ("" if v["converged"] else ", not converged")
        + ")"
        for c, dims in calls.items()
        for d, v in dims.items()
    )


def assess_type(
    spec: MigrationSpec,
    records: list[Record],
    request_type: str,
    candidates: Sequence[str],
    draws: int,
    warmup: int,
) -> TypeCall:
    """The calibrated decision on one request type's judged pairs (its records only, one segment)."""
    from changeover.assessment import assess

    present = {r.model for r in records}
    cands = [c for c in candidates if c in present]
    paired = {r.item for r in records if r.model == spec.incumbent}
    pairs = sum(1 for r in records if r.model in cands and r.item in paired)
    if spec.incumbent not in present or not cands:
        return TypeCall(request_type, False, pairs, {}, "no judged pairs")
    sub = spec.model_copy(
        update={
            "candidates": cands,
            "segment_by": [],
            "required_segments": "all",
            "traffic": spec.traffic.model_copy(update={"shares": None}),
        }
    )
    try:
        assessment = assess(sub, records, draws=draws, warmup=warmup, chains=CHAINS, seed=spec.seed, next_count=0)
    except ChangeoverError as exc:  # these records cannot be assessed (yet): not settled
        return TypeCall(request_type, False, pairs, {}, str(exc))
    calls = {
        c: {n: _dimension_call(d) for n, d in result.dimensions.items() if d.required}
        for c, result in assessment.candidates.items()
    }
    settled = all(
        v["call"] in SETTLED_CALLS and not v["borderline"] and v["converged"]
        for dims in calls.values()
        for v in dims.values()
    )
    return TypeCall(request_type, settled, pairs, calls, _words(calls))


def _fingerprint(records: list[Record]) -> int:
    """Changes when a record or a label of the type changes (then it is assessed again)."""
    return hash(
        frozenset(
            (
                r.item,
                r.model,
                tuple(sorted(r.signals.items())),
                tuple((d, tuple(v)) for d, v in sorted(r.labels.items())),
            )
            for r in records
        )
    )


@dataclass(frozen=True, slots=True)
class TypeState:
    settled: bool
    since: datetime
    rate: float


class KeepAlive:
    """The per-type mirror rate (``rate``, read on the request path: a dict lookup) and the periodic ``check``."""

    def __init__(self, spec: MigrationSpec, store: Store, settings: Settings):
        assert settings.shadow.keep_alive is not None
        self.spec = spec
        self.store = store
        self.config: KeepAliveSettings = settings.shadow.keep_alive
        self.configured: Callable[[str], float] = settings.shadow.rate
        self.candidates = list(settings.mirror_to)
        self.gold = spec_answers(spec)  # the gold file's answers: labels read as ``changeover assess`` reads them
        self.subject = settings.rollout.flag
        self.state: dict[str, TypeState] = {}
        self.last: dict[str, TypeCall] = {}  # the latest assessment per request type
        self.checks = 0  # passes over the judged records done
        self.assessments = 0  # request types assessed (unchanged ones are skipped)
        self.errors = 0
        self._seen: dict[str, int] = {}
        self._done = threading.Condition()

    # ------------------------------------------------------------------ request side

    def rate(self, request_type: str) -> float:
        state = self.state.get(request_type)
        return self.config.rate if state is not None and state.settled else self.configured(request_type)

    def rates(self, request_types: Sequence[str] = ()) -> dict[str, float]:
        """The current mirror rate of every type assessed or settled (and of ``request_types``)."""
        return {t: self.rate(t) for t in sorted({*self.state, *self.last, *request_types})}

    # ------------------------------------------------------------------ background

    def load(self) -> None:
        """The state the event log left (a restarted gateway keeps a settled type's keep-alive rate)."""
        for event in keep_alive_events(self.store, self.subject):
            t = event.payload.get("request_type")
            if isinstance(t, str):
                self.state[t] = TypeState(bool(event.payload.get("settled")), event.at, float(event.payload["rate"]))

    def check(self) -> list[TypeCall]:
        """Assess every request type whose judged records changed; record and apply each change. Returns the
        assessments made."""
        since = now() - timedelta(seconds=self.config.window)
        models = [self.spec.incumbent, *self.candidates]
        records, _ = load_records_counted(self.store, models, JUDGED_SOURCE, since, gold=self.gold)
        by_type: dict[str, list[Record]] = defaultdict(list)
        for r in records:
            by_type[str(r.segment.get("request_type", ""))].append(r)
        made = []
        for t in sorted({*by_type, *(t for t, s in self.state.items() if s.settled)}):
            recs = by_type.get(t, [])
            print_ = _fingerprint(recs)
            if self._seen.get(t) == print_ and t in self.last:
                continue
            call = assess_type(self.spec, recs, t, self.candidates, self.config.draws, self.config.warmup)
            self._seen[t], self.last[t] = print_, call
            self.assessments += 1
            made.append(call)
            self._apply(call)
        with self._done:
            self.checks += 1
            self._done.notify_all()
        return made

    def _apply(self, call: TypeCall) -> None:
        was = self.state.get(call.request_type)
        if (was is not None and was.settled) == call.settled:
            return
        latest = self._latest(call.request_type)
        if latest is not None and bool(latest.payload.get("settled")) == call.settled:  # another replica's event
            self.state[call.request_type] = TypeState(call.settled, latest.at, float(latest.payload["rate"]))
            return
        configured = self.configured(call.request_type)
        rate = self.config.rate if call.settled else configured
        payload = {
            "request_type": call.request_type,
            "settled": call.settled,
            "rate": rate,
            "configured_rate": configured,
            "keep_alive_rate": self.config.rate,
            "pairs": call.pairs,
            "candidates": call.calls,
        }
        state = TypeState(call.settled, now(), rate)
        kind = f"{EVENT}.{'settled' if call.settled else 'unsettled'}"
        reason = f"{'settled' if call.settled else 'not settled'} on {call.pairs} judged pairs: {call.reason}"
        if call.settled:  # the event first, then the rate falls: every unmirrored request is after the event
            record_event(self.store, kind, self.subject, ACTOR, reason, payload)
            self.state[call.request_type] = state
        else:  # the rate rises first, then the event
            self.state[call.request_type] = state
            record_event(self.store, kind, self.subject, ACTOR, reason, payload)
        log.info("request type %r: mirror rate %.3f (%s)", call.request_type, rate, reason)

    def _latest(self, request_type: str) -> Event | None:
        mine = [e for e in keep_alive_events(self.store, self.subject) if e.payload.get("request_type") == request_type]
        return mine[-1] if mine else None

    def wait_checks(self, n: int, timeout: float) -> bool:
        """``n`` passes done (for tests); False on timeout."""
        with self._done:
            return self._done.wait_for(lambda: self.checks >= n, timeout)


# ---------------------------------------------------------------------- the report side


@dataclass(frozen=True, slots=True)
class Stretch:
    """A stretch of time a request type was settled (``end`` None: still is), and the rate it replaced."""

    start: datetime
    end: datetime | None
    configured_rate: float


def stretches(events: Sequence[Event], request_type: str) -> list[Stretch]:
    out: list[Stretch] = []
    start: Event | None = None
    for e in events:
        if e.payload.get("request_type") != request_type:
            continue
        if e.payload.get("settled") and start is None:
            start = e
        elif not e.payload.get("settled") and start is not None:
            out.append(Stretch(start.at, e.at, float(start.payload.get("configured_rate", 1.0))))
            start = None
    if start is not None:
        out.append(Stretch(start.at, None, float(start.payload.get("configured_rate", 1.0))))
    return out


def keep_alive_events(store: Store, subject: str) -> list[Event]:
    """The keep-alive events of the migration whose rollout flag is ``subject``, oldest first."""
    return list_events(store, subject=subject, kind_prefix=EVENT)


def savings(
    answers: Sequence[Answer],
    events: Sequence[Event],
    incumbent: str,
    candidate: str,
    request_type: str,
    configured_rate: float,
    cost_usd_per_1k: float | None,
) -> dict[str, Any]:
    """The type's mirror rate now, whether it is settled, and what keep-alive saved against mirroring at the
    configured rate: requests served by the incumbent in settled stretches that the configured rate would have
    mirrored and were not (configured rate x served - mirrored), at the measured cost per mirrored request."""
    mine = [e for e in events if e.payload.get("request_type") == request_type]
    latest = mine[-1].payload if mine else None
    spans = stretches(mine, request_type)
    mirrored = {a.request_id for a in answers if a.model == candidate and a.role == "mirror"}
    not_mirrored = 0.0
    for span in spans:
        served = [
            a.request_id
            for a in answers
            if a.model == incumbent
            and a.role == "served"
            and a.ok
            and a.request_type == request_type
            and a.at >= span.start
            and (span.end is None or a.at < span.end)
        ]
        not_mirrored += max(0.0, span.configured_rate * len(served) - sum(1 for r in served if r in mirrored))
    per_request = None if cost_usd_per_1k is None else cost_usd_per_1k / 1000.0
    return {
        "rate": float(latest["rate"]) if latest else configured_rate,
        "configured_rate": configured_rate,
        "settled": bool(latest and latest.get("settled")),
        "settled_since": spans[-1].start.isoformat() if spans and spans[-1].end is None else None,
        "requests_not_mirrored": not_mirrored,
        "cost_usd_per_mirrored_request": per_request,
        "usd_saved": None if per_request is None else not_mirrored * per_request,
    }


def total_savings(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The overall row: the request types' savings summed (no one rate)."""
    kept = [r for r in rows if r]
    saved = [r["usd_saved"] for r in kept if r["usd_saved"] is not None]
    return {
        "rate": None,
        "configured_rate": None,
        "settled": bool(kept) and all(r["settled"] for r in kept),
        "settled_since": None,
        "requests_not_mirrored": sum(r["requests_not_mirrored"] for r in kept),
        "cost_usd_per_mirrored_request": None,
        "usd_saved": sum(saved) if saved else None,
    }


def _rate_cell(row: dict[str, Any]) -> str:
    k = row.get("keep_alive")
    if not k or k["rate"] is None:
        return "-"
    return f"{100 * k['rate']:.1f}%" + (" (settled)" if k["settled"] else "")


def _saved_cell(row: dict[str, Any]) -> str:
    k = row.get("keep_alive")
    if not k:
        return "-"
    usd = "-" if k["usd_saved"] is None else f"{k['usd_saved']:,.4f}"
    return f"{usd} ({k['requests_not_mirrored']:,.0f} not mirrored)"


TABLE_LINES: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("mirror rate now (keep-alive)", _rate_cell),
    ("USD saved by keep-alive", _saved_cell),
]
"""The shadow report table's keep-alive lines (``changeover shadow report``)."""
