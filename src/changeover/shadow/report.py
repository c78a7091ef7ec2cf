"""The shadow report: per candidate and request type, how the mirrored answers compare with the incumbent's.

For each (candidate, request type) and overall: the pairs the judging worker
judged and each judge signal's pass rate (``shadow.judging``), which part of the
week the pairs cover, semantic-equivalence rate on the pairs, disagreements
classified better / worse / different, latency percentiles, tokens and cost
per 1k requests, refusal / error / malformed / timeout rates, format drift and
the answers that carried an upstream deprecation notice (earliest sunset named),
each beside the incumbent's own value on the same requests. With
``shadow.keep_alive`` (``settings`` given), ``keep_alive`` gives each request
type's mirror rate now, whether it is settled, and the USD keep-alive saved
against mirroring at the configured rate (``shadow.keepalive.savings``).
``disagreements`` is the deterministic rule on every pair: an answer against a
failure or refusal is better (or worse), anything else is just different. With
a comparison judge among the spec's judges, ``comparison`` gives the judge's
classes on the judged pairs - equivalent / better / worse / different, failed
comparisons, pairs the pre-filter settled - with up to ``examples`` pairs of
each class (``shadow.disagreements``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from changeover.records import Record
from changeover.shadow.disagreements import EXAMPLES, comparison_summary
from changeover.shadow.keepalive import keep_alive_events, savings, total_savings
from changeover.shadowlog.answers import Answer, Pair, load_answers, pairs
from changeover.shadowlog.checks import equivalent, format_drift
from changeover.shadowlog.export import JUDGED_SOURCE
from changeover.store.responses import load_records_counted

Comparer = Callable[[Pair], str]  # -> "better" | "worse" | "different"

ALL = "all"


def _usable(a: Answer) -> bool:
    return a.ok and not a.refusal


def compare(pair: Pair) -> str:
    """Deterministic disagreement class, from the user's side of the candidate's answer."""
    inc, cand = _usable(pair.incumbent), _usable(pair.candidate)
    if inc and not cand:
        return "worse"
    if cand and not inc:
        return "better"
    return "different"


def _rate(xs: Sequence[Answer], hit: Callable[[Answer], bool]) -> float | None:
    return sum(1 for a in xs if hit(a)) / len(xs) if xs else None


def _latency(xs: Sequence[Answer]) -> dict[str, float | None]:
    lat = [a.latency_ms for a in xs if a.ok and a.latency_ms is not None]
    if not lat:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def _per_1k(xs: Sequence[Answer], get: Callable[[Answer], float | None]) -> float | None:
    """Per 1k requests: a failed call counts as nothing billed, an answer without a count is left out
    (never averaged as zero: that made streamed incumbents look ~34% cheaper)."""
    values = [v if (v := get(a)) is not None or a.ok else 0.0 for a in xs]
    known = [v for v in values if v is not None]
    return 1000.0 * sum(known) / len(known) if known else None


AS_SENT = "as sent"


def prompt_versions(xs: Sequence[Answer]) -> dict[str, int]:
    """Answers per registry variant the request was sent with (``as sent``: no variant applied)."""
    counts: dict[str, int] = defaultdict(int)
    for a in xs:
        counts[a.prompt_version or AS_SENT] += 1
    return dict(sorted(counts.items()))


def deprecations(xs: Sequence[Answer]) -> dict[str, Any]:
    """How many answers carried an upstream deprecation notice, and the earliest sunset date they named."""
    noticed = [a.deprecation for a in xs if a.deprecation]
    sunsets = sorted(s for n in noticed if (s := n.get("sunset")))
    return {"answers": len(noticed), "earliest_sunset": sunsets[0] if sunsets else None}


def model_profile(xs: Sequence[Answer]) -> dict[str, Any]:
    answered = [a for a in xs if a.ok]
    return {
        "answers": len(xs),
        "prompts": prompt_versions(xs),
        "latency_ms": _latency(xs),
        "tokens_in_per_1k": _per_1k(xs, lambda a: a.tokens_in),
        "tokens_out_per_1k": _per_1k(xs, lambda a: a.tokens_out),
        "cost_usd_per_1k": _per_1k(xs, lambda a: a.cost_usd),
        "tokens_estimated_rate": _rate(answered, lambda a: bool(a.tokens_estimated)),
        "refusal_rate": _rate(answered, lambda a: bool(a.refusal)),
        "error_rate": _rate(xs, lambda a: not a.ok),
        "malformed_rate": _rate(xs, lambda a: a.malformed),
        "timeout_rate": _rate(xs, lambda a: a.timed_out),
        "deprecations": deprecations(xs),
    }


def coverage(group: Sequence[Pair]) -> dict[str, Any] | None:
    """Which part of the week the pairs cover (UTC): first and last, days spanned, weekdays seen and
    how many of the week's 168 weekday-hours - whether a full business cycle was shadowed."""
    if not group:
        return None
    times = sorted(p.incumbent.at for p in group)
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    seen = {t.weekday() for t in times}
    return {
        "first": times[0].isoformat(),
        "last": times[-1].isoformat(),
        "days": (times[-1] - times[0]).total_seconds() / 86400.0,
        "weekdays": [days[d] for d in sorted(seen)],
        "week_hours": len({(t.weekday(), t.hour) for t in times}),
    }


def judged_summary(group: Sequence[Pair], records: dict[tuple[str, str], Record], incumbent: str) -> dict[str, Any]:
    """The judging worker's verdicts on these pairs: how many were judged, and each signal's pass rate
    for the candidate and the incumbent (unscorable verdicts left out)."""
    judged = [
        (records[(p.incumbent.request_id, incumbent)], records[(p.candidate.request_id, p.candidate.model)])
        for p in group
        if (p.incumbent.request_id, incumbent) in records and (p.candidate.request_id, p.candidate.model) in records
    ]
    signals: dict[str, dict[str, float | None]] = {}
    for name in sorted({s for pair in judged for r in pair for s in r.signals}):
        rates = {}
        for side, i in (("candidate", 1), ("incumbent", 0)):
            values = [float(pair[i].signals[name]) for pair in judged if pair[i].signals.get(name) is not None]
            rates[side] = sum(values) / len(values) if values else None
        signals[name] = rates
    return {"pairs": len(judged), "signals": signals}


def load_judged(store, models: Sequence[str], since: datetime | None) -> dict[tuple[str, str], Record]:
    """The judging worker's records (``shadow.judging``) by (request id, model)."""
    records, _ = load_records_counted(store, models, source=JUDGED_SOURCE, since=since)
    return {(r.item, r.model): r for r in records}


@dataclass
class ShadowReport:
    since: datetime | None
    incumbent: str
    rows: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "incumbent": self.incumbent,
            "rows": self.rows,
        }


def summarise(
    group: Sequence[Pair],
    judge: Callable[[str | None, str | None], bool] = equivalent,
    comparer: Comparer = compare,
) -> dict[str, Any]:
    both = [p for p in group if p.incumbent.ok and p.candidate.ok]
    same = [p for p in both if judge(p.incumbent.text, p.candidate.text)]
    classes = {"better": 0, "worse": 0, "different": 0}
    same_ids = {id(p) for p in same}
    for p in group:
        if id(p) in same_ids:
            continue
        classes[comparer(p)] += 1
    drift = [p for p in both if format_drift(p.incumbent.text, p.candidate.text)]
    return {
        "pairs": len(group),
        "equivalence_rate": len(same) / len(both) if both else None,
        "disagreements": classes,
        "format_drift_rate": len(drift) / len(both) if both else None,
        "candidate_stats": model_profile([p.candidate for p in group]),
        "incumbent_stats": model_profile([p.incumbent for p in group]),
    }


def build_report(
    store,
    incumbent: str,
    candidates: Sequence[str],
    since: datetime | None = None,
    judge: Callable[[str | None, str | None], bool] = equivalent,
    comparer: Comparer = compare,
    examples: int = EXAMPLES,
    settings: Any = None,
) -> ShadowReport:
    """``settings`` (``shadow.config.Settings``): with ``shadow.keep_alive`` on, each row gets ``keep_alive``."""
    answers = load_answers(store, since=since, models=[incumbent, *candidates])
    judged = load_judged(store, [incumbent, *candidates], since)
    keeping = settings is not None and settings.shadow.keep_alive is not None
    events = keep_alive_events(store, settings.rollout.flag) if keeping else []
    rows = []
    for candidate in candidates:
        matched = pairs(answers, incumbent, candidate)
        by_type: dict[str, list[Pair]] = defaultdict(list)
        for p in matched:
            by_type[p.incumbent.request_type].append(p)
        for request_type, group in [(ALL, matched), *sorted(by_type.items())]:
            rows.append(
                {
                    "candidate": candidate,
                    "request_type": request_type,
                    **summarise(group, judge, comparer),
                    "judged": judged_summary(group, judged, incumbent),
                    "comparison": comparison_summary(group, judged, examples),
                    "coverage": coverage(group),
                }
            )
        if keeping:
            typed = [r for r in rows if r["candidate"] == candidate and r["request_type"] != ALL]
            for row in typed:
                row["keep_alive"] = savings(
                    answers,
                    events,
                    incumbent,
                    candidate,
                    row["request_type"],
                    settings.shadow.rate(row["request_type"]),
                    row["candidate_stats"]["cost_usd_per_1k"],
                )
            overall = next(r for r in rows if r["candidate"] == candidate and r["request_type"] == ALL)
            overall["keep_alive"] = total_savings([r["keep_alive"] for r in typed])
    return ShadowReport(since, incumbent, rows)
