"""The rollout controller: measure every trigger on a sliding window, then roll back, pause or advance.

Argo Rollouts' analysis semantics, per trigger and per stage: more than
``failure_limit`` failed measurements roll back; more than
``consecutive_error_limit`` unmeasurable runs in a row roll back; more than
``inconclusive_limit`` inconclusive measurements pause for a human. A stage
advances only when its stabilisation window has passed (``min_duration`` and
``min_requests``), every trigger has ``consecutive_success`` successes in a row,
and - Flagger's rule - no check of this run failed. Every run is an event
(``rollout.analysis``) with its measurements and decision; a run that changes the
flag writes its analysis in the same transaction as the change. A change the
store cannot take (it is down) is kept pending by ``ChangeRetrier`` and lands
once when the store is back; analysis waits until then.

At 100 % the rollout *holds* (``rollout.hold``): the candidate serves everyone,
the incumbent answers a reverse-mirrored share of the requests, and the
triggers keep running against it - the baseline is then the incumbent's
reverse-mirrored answers only (its fallback answers exist only where the
candidate failed, the harder requests: they would skew the baseline; they are
counted apart, ``incumbent_fallbacks`` in the analysis) and a pair is the
candidate's served answer with the incumbent's mirrored one. A failed trigger rolls back (everyone on the
incumbent, the same flag flip); once the hold has passed with no failed check,
the controller advances, which ends the hold and decommissions the incumbent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from changeover.errors import FlagConflict
from changeover.rollout import state as rollout_state
from changeover.rollout.config import RolloutConfig, Trigger, format_duration
from changeover.rollout.measure import Measurement, Window, WordEquivalence, measure
from changeover.rollout.pending import ChangeRetrier
from changeover.rollout.state import RolloutState, in_hold
from changeover.rollout.window import HoldWindow, window_from_store
from changeover.shadowlog.tables import ensure_tables
from changeover.store import Store
from changeover.store.events import append_event, now
from changeover.store.flags import EventSpec

ACTOR = "controller"


@dataclass(slots=True)
class TriggerRecord:
    """A trigger's counters within the current stage."""

    failures: int = 0
    inconclusives: int = 0
    consecutive_errors: int = 0
    consecutive_successes: int = 0


@dataclass(slots=True)
class Decision:
    action: str  # rollback | pause | advance | hold | idle
    reason: str
    measurements: list[Measurement] = field(default_factory=list)
    state: RolloutState | None = None
    pending: bool = False  # the change is decided but waits for the store (routing follows ``state``)


def _describe(m: Measurement) -> str:
    if m.value is None or m.limit is None:
        return m.phase + (f" ({m.message})" if m.message else "")
    base = f", baseline {m.baseline:.4g}" if m.baseline is not None else ""
    by = f" by {m.method}" if m.method else ""
    return f"{m.phase}: {m.metric} {m.value:.4g} vs limit {m.limit:.4g}{base} on {m.samples} samples{by}"


class Controller:
    """Evaluates the triggers of the current stage and changes the flag when they say so.

    Several gateway replicas may each run one: flag changes are compare-and-set,
    so only one of them wins a given change and the others see it on their next run.
    """

    def __init__(
        self,
        store: Store,
        config: RolloutConfig,
        incumbent: str,
        candidate: str,
        regression: Callable[[Trigger, Window], tuple[float, int]] | None = None,
        clock: Callable[[], datetime] = now,
        retrier: ChangeRetrier | None = None,
        equivalence: Callable[[Window], tuple[float | None, int, str]] | None = None,
    ):
        ensure_tables(store)  # once, at start-up: each run only reads
        self.store = store
        self.config = config
        self.incumbent = incumbent
        self.candidate = candidate
        self.regression = regression
        # the judged semantic equivalence, else word similarity with each pair's texts read once
        self.equivalence = equivalence or WordEquivalence()
        self.clock = clock
        self.retrier = retrier or ChangeRetrier(store, config)
        self.records: dict[str, TriggerRecord] = {}
        self._version = -1
        self.last: Decision | None = None

    def forget_counts(self) -> None:
        """Start the triggers' counts afresh at the next run (this replica has just taken the controller
        lease: counts it kept from an earlier hold are stale, another holder ran the analysis meanwhile)."""
        self._version = -1

    def _reset_if_changed(self, state: RolloutState) -> None:
        if state.version != self._version:
            self._version = state.version
            self.records = {t.name: TriggerRecord() for t in self.config.triggers}

    def _count(self, m: Measurement) -> TriggerRecord:
        rec = self.records.setdefault(m.trigger, TriggerRecord())
        if m.phase == "failed":
            rec.failures += 1
        if m.phase == "inconclusive":
            rec.inconclusives += 1
        rec.consecutive_errors = rec.consecutive_errors + 1 if m.phase == "error" else 0
        rec.consecutive_successes = rec.consecutive_successes + 1 if m.phase == "successful" else 0
        return rec

    def _decide(self, state: RolloutState, measurements: list[Measurement], window: Window) -> tuple[str, str]:
        cfg = self.config
        for m in measurements:
            rec = self.records[m.trigger]
            if rec.failures > cfg.failure_limit:
                return "rollback", (
                    f"trigger {m.trigger} failed {rec.failures} time(s) "
                    f"(failure_limit {cfg.failure_limit}); last: {_describe(m)}"
                )
            if rec.consecutive_errors > cfg.consecutive_error_limit:
                return "rollback", (
                    f"trigger {m.trigger} could not be measured {rec.consecutive_errors} times "
                    f"in a row (limit {cfg.consecutive_error_limit}): {m.message}"
                )
        if state.status in ("progressing", "holding"):
            for m in measurements:
                if self.records[m.trigger].inconclusives > cfg.inconclusive_limit:
                    return "pause", (
                        f"trigger {m.trigger} inconclusive ({_describe(m)}); a human decides: "
                        "`changeover rollout advance|rollback --reason ...`"
                    )
        if state.status == "holding":
            return self._decide_hold(state, measurements)
        if state.status != "progressing" or not cfg.auto_advance:
            return "hold", f"rollout is {state.status.replace('_', ' ')}"
        if state.stage + 1 >= len(cfg.stages):
            return "hold", "at the last stage"
        if any(m.phase == "failed" for m in measurements):
            return "hold", "a check failed in this run; a stage never advances on a failed check"
        stage = cfg.stages[state.stage]
        elapsed = (self.clock() - state.since).total_seconds()
        if elapsed < stage.min_duration:
            return "hold", f"stabilising: {elapsed:.0f}s of {stage.min_duration:.0f}s"
        if window.candidate.answers < stage.min_requests:
            return "hold", f"stabilising: {window.candidate.answers} of {stage.min_requests} candidate answers"
        short = [
            m.trigger for m in measurements if self.records[m.trigger].consecutive_successes < cfg.consecutive_success
        ]
        if short:
            return "hold", f"waiting for {cfg.consecutive_success} successes in a row: {', '.join(short)}"
        return "advance", (
            f"stage {state.stage} ({state.weight}%) stable for {elapsed:.0f}s over "
            f"{window.candidate.answers} candidate answers with every trigger clear"
        )

    def _decide_hold(self, state: RolloutState, measurements: list[Measurement]) -> tuple[str, str]:
        """During the hold: keep holding until ``hold`` has passed, then advance (end it, decommission)."""
        cfg = self.config
        elapsed = rollout_state.held_for(state, self.clock())  # the time held before a pause counts
        if elapsed < cfg.hold:
            return "hold", (
                f"holding at 100%: {format_duration(elapsed)} of {format_duration(cfg.hold)}, "
                f"{cfg.reverse_mirror:.0%} reverse-mirrored to the incumbent"
            )
        if any(m.phase == "failed" for m in measurements):
            return "hold", "the hold has passed but a check failed in this run; it never ends on a failed check"
        if not cfg.auto_advance:
            return (
                "hold",
                "the hold has passed; auto_advance is off: an operator ends it (`changeover rollout advance`)",
            )
        return "advance", (
            f"the hold passed: {format_duration(elapsed)} at 100% (hold {format_duration(cfg.hold)}) "
            "with no trigger failed; "
            "the incumbent can be decommissioned"
        )

    def _waiting(self) -> Decision:
        """A change is pending: try it when due; no analysis until it has landed."""
        retrier = self.retrier
        pending = retrier.pending
        assert pending is not None
        if retrier.due() == 0:
            landed = retrier.retry()
            if landed is not None:
                self._reset_if_changed(landed)
                self.last = Decision(pending.action, f"{pending.action} landed after the store came back", [], landed)
                return self.last
            if retrier.pending is None:  # dropped: the flag moved meanwhile
                self.last = Decision("hold", f"the pending {pending.action} was superseded", [], None)
                return self.last
        error = pending.last_error or pending.first_error
        self.last = Decision(
            "hold",
            f"a {pending.action} waits for the store ({pending.attempts} attempts): {error}",
            [],
            pending.preview,
            pending=True,
        )
        return self.last

    def tick(self) -> Decision:
        """One analysis run: measure, decide, record the run as an event, act."""
        if self.retrier.pending is not None:
            return self._waiting()
        state = rollout_state.ensure_started(self.store, self.config, self.candidate, ACTOR)
        self._reset_if_changed(state)
        if state.status in ("rolled_back", "complete"):
            self.last = Decision("idle", f"rollout is {state.status.replace('_', ' ')}", [], state)
            return self.last
        start = max(state.since, self.clock() - timedelta(seconds=self.config.window))
        window = window_from_store(self.store, self.incumbent, self.candidate, start, reverse=in_hold(state))
        regression = (lambda t: self.regression(t, window)) if self.regression else None
        equivalence = partial(self.equivalence, window)
        measurements = [measure(t, window, regression, equivalence) for t in self.config.triggers]
        for m in measurements:
            self._count(m)
        action, reason = self._decide(state, measurements, window)
        payload: dict[str, Any] = {
            "stage": state.stage,
            "weight": state.weight,
            "action": action,
            "candidate_answers": window.candidate.answers,
            "measurements": [m.to_json() for m in measurements],
        }
        if isinstance(window, HoldWindow):
            payload["incumbent_fallbacks"] = window.fallbacks  # out of the baseline, shown apart
        analysis = EventSpec("rollout.analysis", reason, payload)
        new_state, pending = state, False
        if action in ("rollback", "pause", "advance"):
            try:
                new_state, written = self.retrier.run(
                    action,
                    state,
                    ACTOR,
                    reason,
                    {"measurements": payload["measurements"]},
                    also=(analysis,),
                    clock=self.clock,
                )
            except FlagConflict:
                self._record(analysis)
                action, reason = "hold", f"lost the race to change the flag ({reason})"
            else:
                pending = not written
                if written:
                    self._reset_if_changed(new_state)
        else:
            self._record(analysis)
        self.last = Decision(action, reason, measurements, new_state, pending)
        return self.last

    def _record(self, event: EventSpec) -> None:
        with self.store.reachable("recording the rollout analysis"), self.store.engine.begin() as conn:
            append_event(conn, event.kind, self.config.flag, ACTOR, event.reason, event.payload)
