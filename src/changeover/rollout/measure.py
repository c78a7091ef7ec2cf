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

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
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


@dataclass(frozen=True, slots=True)
class Window:
    """The answers a measurement sees: the candidate's, the incumbent's served ones, and pairs."""

    candidate: Sequence[Answer]
    incumbent: Sequence[Answer]
    pairs: Sequence[Pair]


def _rate(answers: Sequence[Answer], hit: Callable[[Answer], bool]) -> tuple[float | None, int]:
    if not answers:
        return None, 0
    return sum(1 for a in answers if hit(a)) / len(answers), len(answers)


def _percentile(q: float) -> Callable[[Sequence[Answer]], tuple[float | None, int]]:
    def metric(answers: Sequence[Answer]) -> tuple[float | None, int]:
        lat = [a.latency_ms for a in answers if a.ok and a.latency_ms is not None]
        return (float(np.percentile(lat, q)) if lat else None), len(lat)

    return metric


def _refusal_rate(answers: Sequence[Answer]) -> tuple[float | None, int]:
    return _rate([a for a in answers if a.ok], lambda a: bool(a.refusal))


PER_MODEL: dict[str, Callable[[Sequence[Answer]], tuple[float | None, int]]] = {
    "refusal_rate": _refusal_rate,
    "error_rate": lambda xs: _rate(xs, lambda a: not a.ok),
    "timeout_rate": lambda xs: _rate(xs, lambda a: a.timed_out),
    "malformed_rate": lambda xs: _rate(xs, lambda a: a.malformed),
    "p50_latency": _percentile(50),
    "p95_latency": _percentile(95),
    "p99_latency": _percentile(99),
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
