"""Measure rollback triggers on a sliding window of live answers, with Argo Rollouts' phases.

Each measurement is ``successful``, ``failed``, ``inconclusive`` (inside the
trigger's inconclusive band: a human decides), ``error`` (the metric could not
be measured, e.g. the assessment core failed) or ``pending`` (fewer samples than
the trigger's ``min_samples``: nothing was measured, nothing is counted).
The candidate's answers (served and mirrored) are compared with the incumbent's
served answers in the same window: the baseline moves with the traffic.

``semantic_equivalence`` is measured by the LLM judge when one is configured
(the comparison judge's share of judged pairs that are equivalent or candidate
better, else the equivalence judge's share called the same; ``rollout.regression``)
and by word similarity otherwise; the measurement names which (``method``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np

from changeover.rollout.config import Trigger
from changeover.shadowlog.answers import Answer, Pair
from changeover.shadowlog.checks import equivalent

Phase = Literal["successful", "failed", "inconclusive", "error", "pending"]


@dataclass(frozen=True, slots=True)
class Measurement:
    trigger: str
    metric: str
    phase: Phase
    value: float | None = None
    baseline: float | None = None
    limit: float | None = None
    samples: int = 0
    message: str | None = None
    method: str | None = None  # what measured it, when a metric has several ways (semantic_equivalence)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


LATENCY_PERCENTILES = (50, 95, 99)


@dataclass(frozen=True, slots=True)
class Tally:
    """One side's answers in the window, counted: all the per-model triggers read (never the texts).

    The controller counts them in SQL (``rollout.window``); ``Tally.of`` counts answers in memory the same way.
    """

    answers: int = 0
    errors: int = 0
    timeouts: int = 0
    malformed: int = 0
    refusals: int = 0  # among the answers without an error
    timed: int = 0  # answers without an error that have a latency
    latency: Mapping[int, float] = field(default_factory=dict)  # percentile -> ms, over the timed answers

    @property
    def answered(self) -> int:
        return self.answers - self.errors

    @classmethod
    def of(cls, answers: Iterable[Answer]) -> Tally:
        answers = list(answers)
        ok = [a for a in answers if a.ok]
        lat = [a.latency_ms for a in ok if a.latency_ms is not None]
        return cls(
            answers=len(answers),
            errors=len(answers) - len(ok),
            timeouts=sum(1 for a in answers if a.timed_out),
            malformed=sum(1 for a in answers if a.malformed),
            refusals=sum(1 for a in ok if a.refusal),
            timed=len(lat),
            latency=percentiles(lat),
        )


def percentiles(latencies: Sequence[float]) -> dict[int, float]:
    """The trigger percentiles of ``latencies`` (linear interpolation: PostgreSQL's ``percentile_cont``)."""
    if not len(latencies):
        return {}
    return {
        q: float(v) for q, v in zip(LATENCY_PERCENTILES, np.percentile(latencies, LATENCY_PERCENTILES), strict=True)
    }


@dataclass(frozen=True, slots=True)
class PairKey:
    """A pair of the window without its texts: the request and when the incumbent's side was logged."""

    request_id: str
    at: datetime


PairLoader = Callable[[Collection[str] | None], Sequence[Pair]]
"""Reads a window's pairs with their texts: all of them (None), or those of these request ids."""


class Window:
    """What a measurement sees: the candidate's answers and the incumbent's baseline, counted (``Tally``),
    and the incumbent/candidate pairs - their keys always, their texts only when a measure asks
    (``pairs``: word-similarity equivalence, ``p_regression`` on the deterministic signals).

    ``version`` names the window's content (the pairs it holds): equal versions, same pairs, so a
    measure may reuse what it computed on it (``rollout.regression``).
    """

    __slots__ = ("_load", "_pairs", "candidate", "incumbent", "keys", "version")

    def __init__(
        self,
        candidate: Tally,
        incumbent: Tally,
        keys: Sequence[PairKey],
        load: PairLoader,
        version: Hashable,
    ):
        self.candidate = candidate
        self.incumbent = incumbent
        self.keys = keys
        self.version = version
        self._load = load
        self._pairs: Sequence[Pair] | None = None

    @classmethod
    def of(cls, candidate: Sequence[Answer], incumbent: Sequence[Answer], pairs: Sequence[Pair]) -> Window:
        """A window over answers in memory."""
        pairs = list(pairs)
        keys = [PairKey(p.incumbent.request_id, p.incumbent.at) for p in pairs]

        def load(ids: Collection[str] | None) -> Sequence[Pair]:
            return pairs if ids is None else [p for p in pairs if p.incumbent.request_id in ids]

        return cls(Tally.of(candidate), Tally.of(incumbent), keys, load, tuple(k.request_id for k in keys))

    @property
    def pairs(self) -> Sequence[Pair]:
        """The pairs with their answers' texts (read once per window, when first asked)."""
        if self._pairs is None:
            self._pairs = self._load(None)
        return self._pairs

    def pairs_of(self, request_ids: Collection[str]) -> Sequence[Pair]:
        """Only the pairs of ``request_ids``, with their texts (for a measure that kept what it read of the
        others)."""
        ids = set(request_ids)
        if self._pairs is not None or not ids:
            return [p for p in self._pairs or () if p.incumbent.request_id in ids]
        return self._load(ids)


def _rate(hits: int, out_of: int) -> tuple[float | None, int]:
    return (hits / out_of if out_of else None), out_of


def _percentile(q: int) -> Callable[[Tally], tuple[float | None, int]]:
    def metric(t: Tally) -> tuple[float | None, int]:
        return t.latency.get(q), t.timed

    return metric


PER_MODEL: dict[str, Callable[[Tally], tuple[float | None, int]]] = {
    "refusal_rate": lambda t: _rate(t.refusals, t.answered),
    "error_rate": lambda t: _rate(t.errors, t.answers),
    "timeout_rate": lambda t: _rate(t.timeouts, t.answers),
    "malformed_rate": lambda t: _rate(t.malformed, t.answers),
    **{f"p{q}_latency": _percentile(q) for q in LATENCY_PERCENTILES},
}


WORD_SIMILARITY = "word similarity (no LLM judge for equivalence)"
EquivalenceReading = tuple[float | None, int, str]
"""The judged semantic equivalence of a window: (share, judged pairs, which judge measured it)."""


def equivalence_rate(
    pairs: Sequence[Pair], judge: Callable[[str | None, str | None], bool] = equivalent
) -> tuple[float | None, int]:
    """Share of mirrored pairs (both answered) whose candidate answer is equivalent to the incumbent's."""
    both = [p for p in pairs if p.incumbent.ok and p.candidate.ok]
    if not both:
        return None, 0
    return sum(1 for p in both if judge(p.incumbent.text, p.candidate.text)) / len(both), len(both)


class WordEquivalence:
    """Word-similarity ``semantic_equivalence`` over a controller's successive windows: each pair's texts are
    read and compared once (a logged answer never changes) and only its verdict is kept, for as long as the
    pair is in the window. The reading ``equivalence_rate`` gives on the window's pairs, without reading every
    text on every run."""

    def __init__(self, judge: Callable[[str | None, str | None], bool] = equivalent):
        self.judge = judge
        self.read = 0  # pairs whose texts were read
        self._verdicts: dict[str, bool | None] = {}  # request id -> equivalent (None: not both answered)

    def __call__(self, window: Window) -> EquivalenceReading:
        new = [k.request_id for k in window.keys if k.request_id not in self._verdicts]
        for p in window.pairs_of(new) if new else ():
            both = p.incumbent.ok and p.candidate.ok
            self._verdicts[p.incumbent.request_id] = self.judge(p.incumbent.text, p.candidate.text) if both else None
            self.read += 1
        held = {k.request_id for k in window.keys}
        self._verdicts = {r: v for r, v in self._verdicts.items() if r in held}
        verdicts = [v for k in window.keys if (v := self._verdicts.get(k.request_id)) is not None]
        return (sum(verdicts) / len(verdicts) if verdicts else None), len(verdicts), WORD_SIMILARITY


def _limit(trigger: Trigger, baseline: float | None) -> float:
    if trigger.above_baseline is not None:
        return baseline + trigger.above_baseline
    if trigger.ratio is not None:
        return baseline * trigger.ratio
    return trigger.above if trigger.above is not None else trigger.below


def judge_value(trigger: Trigger, value: float, limit: float, baseline: float | None, samples: int) -> Measurement:
    """Successful / failed / inconclusive for a measured value against the trigger's bound."""
    band = trigger.inconclusive or 0.0
    if trigger.below is not None:
        failed, doubtful = value < limit, value < limit + band
    else:
        failed, doubtful = value > limit, value > limit - band
    phase: Phase = "failed" if failed else "inconclusive" if band and doubtful else "successful"
    return Measurement(trigger.name, trigger.metric, phase, value, baseline, limit, samples)


def _pending(trigger: Trigger, value: float | None, baseline: float | None, n: int, have: str) -> Measurement:
    """Too few samples to measure: nothing is judged, nothing is counted."""
    return Measurement(
        trigger.name, trigger.metric, "pending", value, baseline, None, n, f"{have}, needs {trigger.min_samples}"
    )


def measure(
    trigger: Trigger,
    window: Window,
    regression: Callable[[Trigger], tuple[float, int]] | None = None,
    equivalence: Callable[[], EquivalenceReading] | None = None,
) -> Measurement:
    """One measurement of one trigger; never raises (a failure to measure is phase ``error``).
    ``equivalence``: the judged semantic equivalence of the window, when an LLM judge gives it."""
    try:
        baseline = method = None
        if trigger.metric == "p_regression":
            if regression is None:
                raise RuntimeError("no assessment available for p_regression")
            value, n = regression(trigger)
        elif trigger.metric == "semantic_equivalence":
            if equivalence is not None:
                value, n, method = equivalence()
            else:
                (value, n), method = equivalence_rate(window.pairs), WORD_SIMILARITY
        else:
            fn = PER_MODEL[trigger.metric]
            value, n = fn(window.candidate)
            if trigger.above_baseline is not None or trigger.ratio is not None:
                baseline, nb = fn(window.incumbent)
                if baseline is None or nb < trigger.min_samples:
                    return _pending(trigger, value, baseline, n, f"baseline has {nb} samples")
        if value is None or n < trigger.min_samples:
            return replace(_pending(trigger, value, baseline, n, f"{n} samples"), method=method)
        return replace(judge_value(trigger, float(value), _limit(trigger, baseline), baseline, n), method=method)
    except Exception as exc:  # noqa: BLE001 - Argo's "error" phase: the metric could not be measured
        return Measurement(trigger.name, trigger.metric, "error", message=f"{type(exc).__name__}: {exc}")
