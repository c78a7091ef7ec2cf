"""The shadow-traffic section: per model latency distribution, tokens and cost, refusal and
error rates, format drift against the incumbent, and side-by-side disagreement examples.

Section input is ``ShadowStats``. It comes from one of two sources, named in the section
(``source``): the gateway's shadow log in the store (``report.shadowlog``: the numbers of
``changeover shadow report``, the disagreement classes and the period covered), or, when the
store holds none, ``shadow_stats(records, spec)`` on the records the decision reads (offline
evaluation runs or exported pairs), which carry ``latency_ms``, ``tokens_*``, ``cost_usd``,
``error`` and ``response``. A feature that has its own numbers can construct ``ShadowStats``
directly and hand it to ``write_report``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from changeover.config import MigrationSpec
from changeover.records import Record
from changeover.report.labels import human_verdict

EXAMPLE_CHARS = 900
SHADOW_LOG = "gateway shadow log"  # ShadowStats.source: the gateway's mirrored traffic
RECORDS = "evaluation records"  # ... the records the decision reads (offline runs or exported pairs)


@dataclass(slots=True)
class ModelTraffic:
    """What one model did on the shadowed (or evaluated) traffic."""

    model: str
    responses: int
    latency_ms: np.ndarray
    tokens_in: float | None = None  # mean per response
    tokens_out: float | None = None
    cost_per_1k: float | None = None  # USD per 1,000 responses
    error_rate: float | None = None
    refusal_rate: float | None = None
    format_drift: float | None = None  # share of paired items formatted unlike the incumbent's answer
    # from the shadow log (None from records): the shadow report's own numbers
    percentiles: tuple[float | None, float | None, float | None] | None = None  # latency p50, p95, p99
    tokens_estimated_rate: float | None = None  # share of answers whose token counts are estimates (no usage)
    malformed_rate: float | None = None
    timeout_rate: float | None = None
    prompts: dict[str, int] = field(default_factory=dict)  # answers per prompt variant sent
    deprecated_answers: int = 0  # answers that carried an upstream deprecation notice
    earliest_sunset: str | None = None  # the earliest sunset those notices named
    requests_of: str | None = None  # the incumbent on the requests mirrored to this candidate (several candidates)

    @property
    def label(self) -> str:
        return self.model if self.requests_of is None else f"{self.model} (requests mirrored to {self.requests_of})"

    def _percentile(self, i: int, q: float) -> float | None:
        if self.percentiles is not None:
            return self.percentiles[i]
        return float(np.percentile(self.latency_ms, q)) if self.latency_ms.size else None

    @property
    def p50(self) -> float | None:
        return self._percentile(0, 50)

    @property
    def p95(self) -> float | None:
        return self._percentile(1, 95)

    @property
    def p99(self) -> float | None:
        return self._percentile(2, 99)


@dataclass(slots=True)
class Example:
    """One item where the models disagree, shown side by side."""

    item: str
    segment: str
    prompt: str
    why: str
    incumbent: tuple[str, str]  # (model, response)
    candidate: tuple[str, str]
    kind: str | None = None  # the disagreement class (shadow log: the judge's or the rule's)


@dataclass(slots=True)
class ShadowPeriod:
    """Which part of the week the mirrored pairs cover (UTC), as ``shadow.report.coverage`` says."""

    pairs: int
    first: str
    last: str
    days: float
    weekdays: list[str]
    week_hours: int  # of the week's 168
    grid: list[list[int]]  # pairs per weekday (Mon first) and hour of the day


@dataclass(slots=True)
class Disagreements:
    """One candidate's mirrored pairs (all, or of one request type) against the incumbent's answers:
    equivalence and disagreement classes, as one row of ``changeover shadow report``."""

    candidate: str
    request_type: str  # "all" or one request type
    pairs: int
    equivalence_rate: float | None  # word similarity (shadowlog.checks.equivalent), on pairs both answered
    rule: dict[str, int]  # better / worse / different by the deterministic rule (shadow.report.compare)
    format_drift: float | None
    judged_pairs: int = 0  # pairs the judging worker judged
    signals: dict[str, dict[str, float | None]] = field(
        default_factory=dict
    )  # judge -> candidate / incumbent pass rate
    judge: str | None = None  # the comparison judge's signal; None: no stored comparison classes
    classes: dict[str, int] | None = None  # equivalent / better / worse / different, by the judge
    failed: int | None = None  # comparisons without a readable verdict
    prefiltered: int | None = None  # pairs the word-similarity pre-filter settled (no judge call)
    equivalent_or_better: float | None = None
    keep_alive: dict[str, Any] | None = None  # the mirror rate now, settled, USD saved (shadow.keepalive.savings)


@dataclass(slots=True)
class ShadowStats:
    """Section input. ``has_metrics`` is False when only response texts are known."""

    models: list[ModelTraffic]
    examples: list[Example] = field(default_factory=list)
    source: str = RECORDS  # SHADOW_LOG or RECORDS
    store: str | None = None  # the store the shadow log was read from (password hidden)
    since: str | None = None  # the shadow log read from this time on (None: all of it)
    period: ShadowPeriod | None = None
    disagreements: list[Disagreements] = field(default_factory=list)

    @property
    def from_shadow_log(self) -> bool:
        return self.source == SHADOW_LOG

    @property
    def by_candidate(self) -> list[tuple[str, list[Disagreements]]]:
        """The disagreement rows per candidate, in the spec's order (all requests first, then each type)."""
        out: dict[str, list[Disagreements]] = {}
        for d in self.disagreements:
            out.setdefault(d.candidate, []).append(d)
        return list(out.items())

    @property
    def has_metrics(self) -> bool:
        return any(
            m.latency_ms.size or m.tokens_out is not None or m.cost_per_1k is not None or m.error_rate
            for m in self.models
        )


_FENCE = re.compile(r"^\s*```")


def output_format(text: str | None) -> str:
    """A coarse class of a response's format: json, fenced (code block), list, or prose."""
    if not text:
        return "empty"
    stripped = text.strip()
    if _FENCE.match(stripped):
        return "fenced"
    if stripped[:1] in "{[":
        try:
            json.loads(stripped)
            return "json"
        except ValueError:
            pass
    lines = [ln.strip() for ln in stripped.splitlines() if ln.strip()]
    listed = sum(ln[:2] in ("- ", "* ") or ln[:3].rstrip(".").isdigit() for ln in lines)
    if lines and listed >= len(lines) / 2:
        return "list"
    return "prose"


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def clip(text: str | None) -> str:
    """A response or request cut to ``EXAMPLE_CHARS`` for an example (an ellipsis where cut)."""
    text = (text or "").strip()
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS].rstrip() + " …"


def _traffic(model: str, recs: list[Record], incumbent_formats: dict[str, str], is_incumbent: bool) -> ModelTraffic:
    latency = np.array([r.latency_ms for r in recs if r.latency_ms is not None], float)
    costs = [r.cost_usd for r in recs if r.cost_usd is not None]
    refused = [bool(r.extra["refused"]) for r in recs if "refused" in r.extra]
    paired = [r for r in recs if r.item in incumbent_formats and r.response is not None]
    drift = None
    if paired and not is_incumbent:
        drift = sum(output_format(r.response) != incumbent_formats[r.item] for r in paired) / len(paired)
    return ModelTraffic(
        model=model,
        responses=len(recs),
        latency_ms=latency,
        tokens_in=_mean([r.tokens_in for r in recs if r.tokens_in is not None]),
        tokens_out=_mean([r.tokens_out for r in recs if r.tokens_out is not None]),
        cost_per_1k=1000 * float(np.mean(costs)) if costs else None,
        error_rate=sum(r.error is not None for r in recs) / len(recs) if recs else None,
        refusal_rate=sum(refused) / len(refused) if refused else None,
        format_drift=drift,
    )


def _disagreement(inc: Record, cand: Record, spec: MigrationSpec) -> tuple[int, str] | None:
    """(priority, why) when the two responses were judged differently: human labels before
    judge scores, and the candidate doing worse before it doing better."""
    for dim in spec.dimensions:
        a, b = inc.labels.get(dim), cand.labels.get(dim)
        if a and b and human_verdict(a) != human_verdict(b):
            incumbent_better = human_verdict(a) == 1
            better = spec.incumbent if incumbent_better else cand.model
            return (0 if incumbent_better else 1), f"{dim}: human labels prefer {better}"
    for dim, cfg in spec.dimensions.items():
        sa, sb = inc.signals.get(cfg.signal or dim), cand.signals.get(cfg.signal or dim)
        if sa is not None and sb is not None and sa != sb:
            return (2 if sb < sa else 3), f"{dim}: judge scored {spec.incumbent} {sa}, {cand.model} {sb}"
    return None


def examples(records: list[Record], spec: MigrationSpec, limit: int) -> list[Example]:
    """Up to ``limit`` items where incumbent and a candidate were judged differently, worst first."""
    by_item: dict[str, dict[str, Record]] = defaultdict(dict)
    for r in records:
        by_item[r.item][r.model] = r
    found = []
    for item, models in by_item.items():
        inc = models.get(spec.incumbent)
        if inc is None or inc.response is None:
            continue
        for cand_name in spec.candidates:
            cand = models.get(cand_name)
            if cand is None or cand.response is None:
                continue
            hit = _disagreement(inc, cand, spec)
            if hit is not None:
                found.append((hit[0], item, cand_name, hit[1], inc, cand))
    found.sort(key=lambda f: (f[0], f[1]))
    seen_cands: dict[str, int] = defaultdict(int)
    out = []
    for _priority, item, cand_name, why, inc, cand in found:
        # spread the examples over the candidates instead of showing one candidate only
        if seen_cands[cand_name] >= max(1, limit // max(len(spec.candidates), 1)):
            continue
        seen_cands[cand_name] += 1
        out.append(
            Example(
                item,
                "/".join(inc.segment.get(k, "?") for k in spec.segment_by) or "all",
                clip(inc.prompt),
                why,
                (inc.model, clip(inc.response)),
                (cand.model, clip(cand.response)),
            )
        )
        if len(out) >= limit:
            break
    return out


def shadow_stats(records: list[Record], spec: MigrationSpec, max_examples: int = 6) -> ShadowStats | None:
    """The section input from records, or None when they hold neither metrics nor responses."""
    by_model: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_model[r.model].append(r)
    incumbent_formats = {
        r.item: output_format(r.response) for r in by_model.get(spec.incumbent, []) if r.response is not None
    }
    models = [_traffic(m, by_model[m], incumbent_formats, m == spec.incumbent) for m in spec.models if by_model[m]]
    stats = ShadowStats(models, examples(records, spec, max_examples))
    if not stats.has_metrics and not stats.examples:
        return None
    return stats
