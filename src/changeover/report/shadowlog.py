"""The shadow section from the gateway's shadow log: what the mirrored traffic showed, per model.

The numbers are those of ``changeover shadow report`` (``shadow.report.build_report`` over the
whole log, one definition of each): latency p50/p95/p99, tokens and cost per request, error,
refusal, malformed and timeout rates, word-similarity equivalence, the rule's better / worse /
different and, where the judging worker stored them, the comparison judge's classes. The period
is ``shadow.report.coverage`` of the pairs, with ``shadow.summary.week_grid`` hour by hour.
Examples show the full request and answers of the pairs the shadow report picked per class
(the judge's), or, without a comparison judge, of pairs the rule calls worse, different or better.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from changeover.config import MigrationSpec
from changeover.records import Record
from changeover.report.shadow import (
    SHADOW_LOG,
    Disagreements,
    Example,
    ModelTraffic,
    ShadowPeriod,
    ShadowStats,
    clip,
    shadow_stats,
)
from changeover.shadow.disagreements import FAILED
from changeover.shadow.report import ALL, build_report, compare, coverage
from changeover.shadow.summary import week_grid
from changeover.shadowlog.answers import Answer, Pair, load_answers, pairs
from changeover.shadowlog.checks import equivalent
from changeover.shadowlog.requests import last_user_message
from changeover.shadowlog.tables import shadow_log
from changeover.store import Store

EXAMPLE_ORDER = ("worse", "different", "better", FAILED)  # the classes a reader must see first
RULE = "by the rule: an answer against a failure or refusal is better or worse, anything else different"


def has_shadow_log(store: Store | None) -> bool:
    """The store holds a shadow log with at least one answer (the table is never created here)."""
    if store is None or not store.has_table(shadow_log.name):
        return False
    with store.engine.connect() as conn:
        return conn.execute(shadow_log.select().limit(1)).first() is not None


def _per_request(per_1k: float | None) -> float | None:
    return None if per_1k is None else per_1k / 1000.0


def _traffic(
    model: str, profile: dict[str, Any], answers: Sequence[Answer], drift: float | None, requests_of: str | None
) -> ModelTraffic:
    lat = profile["latency_ms"]
    return ModelTraffic(
        model=model,
        responses=profile["answers"],
        # for the box plot; the table's percentiles are the shadow report's, over the same answers
        latency_ms=np.array([a.latency_ms for a in answers if a.ok and a.latency_ms is not None], float),
        tokens_in=_per_request(profile["tokens_in_per_1k"]),
        tokens_out=_per_request(profile["tokens_out_per_1k"]),
        cost_per_1k=profile["cost_usd_per_1k"],
        error_rate=profile["error_rate"],
        refusal_rate=profile["refusal_rate"],
        format_drift=drift,
        percentiles=(lat["p50"], lat["p95"], lat["p99"]),
        tokens_estimated_rate=profile["tokens_estimated_rate"],
        malformed_rate=profile["malformed_rate"],
        timeout_rate=profile["timeout_rate"],
        prompts=profile["prompts"],
        deprecated_answers=profile["deprecations"]["answers"],
        earliest_sunset=profile["deprecations"]["earliest_sunset"],
        requests_of=requests_of,
    )


def _disagreements(row: dict[str, Any]) -> Disagreements:
    comparison = row.get("comparison") or {}
    return Disagreements(
        candidate=row["candidate"],
        request_type=row["request_type"],
        pairs=row["pairs"],
        equivalence_rate=row["equivalence_rate"],
        rule=dict(row["disagreements"]),
        format_drift=row["format_drift_rate"],
        judged_pairs=(row.get("judged") or {}).get("pairs", 0),
        signals=dict((row.get("judged") or {}).get("signals", {})),
        judge=comparison.get("judge"),
        classes=comparison.get("classes"),
        failed=comparison.get("failed"),
        prefiltered=comparison.get("prefiltered"),
        equivalent_or_better=comparison.get("equivalent_or_better"),
        keep_alive=row.get("keep_alive"),
    )


def _answer_text(a: Answer) -> str:
    return clip(a.text) if a.ok else f"[no answer: {a.error}]"


def _example(p: Pair, kind: str, why: str) -> Example:
    return Example(
        item=p.incumbent.request_id,
        segment=p.incumbent.request_type,
        prompt=clip(last_user_message(p.incumbent.request) if p.incumbent.request else None),
        why=why,
        incumbent=(p.incumbent.model, _answer_text(p.incumbent)),
        candidate=(p.candidate.model, _answer_text(p.candidate)),
        kind=kind,
    )


def _picked(row: dict[str, Any], matched: Sequence[Pair]) -> dict[str, list[tuple[Pair, str]]]:
    """Pairs per disagreement class with why: the comparison judge's picks (the shadow report's
    examples), else the rule's classes of the pairs that are not word-equivalent."""
    by_id = {p.incumbent.request_id: p for p in matched}
    comparison = row.get("comparison")
    out: dict[str, list[tuple[Pair, str]]] = {k: [] for k in EXAMPLE_ORDER}
    if comparison:
        for kind in EXAMPLE_ORDER:
            for ex in comparison["examples"].get(kind, []):
                if ex["request_id"] in by_id:
                    note = f": {ex['note']}" if ex.get("note") else ""
                    out[kind].append((by_id[ex["request_id"]], f"{kind}, by the judge '{comparison['judge']}'{note}"))
        return out
    for p in matched:
        both = p.incumbent.ok and p.candidate.ok
        if both and equivalent(p.incumbent.text, p.candidate.text):
            continue
        kind = compare(p)
        out[kind].append((p, f"{kind}, {RULE}"))
    return out


def _examples(row: dict[str, Any], matched: Sequence[Pair], limit: int) -> list[Example]:
    """Up to ``limit`` examples, one class after another in EXAMPLE_ORDER until the limit."""
    picked = _picked(row, matched)
    out: list[Example] = []
    depth = 0
    while len(out) < limit and any(len(v) > depth for v in picked.values()):
        for kind in EXAMPLE_ORDER:
            if depth < len(picked[kind]) and len(out) < limit:
                p, why = picked[kind][depth]
                out.append(_example(p, kind, why))
        depth += 1
    return out


def _period(group: Sequence[Pair]) -> ShadowPeriod | None:
    cov = coverage(group)
    if cov is None:
        return None
    return ShadowPeriod(
        pairs=len(group),
        first=cov["first"],
        last=cov["last"],
        days=cov["days"],
        weekdays=cov["weekdays"],
        week_hours=cov["week_hours"],
        grid=week_grid(group),
    )


def _gateway_settings(spec: MigrationSpec) -> Any:
    """The spec's gateway settings (keep-alive's savings need them), or None for a spec without a gateway
    section; a gateway section with a mistake is the error ``load_settings`` names."""
    from changeover.shadow.config import GatewayConfig, load_settings

    return None if spec.section("gateway", GatewayConfig) is None else load_settings(spec)


def shadow_log_stats(
    store: Store | None, spec: MigrationSpec, max_examples: int = 6, since: datetime | None = None
) -> ShadowStats | None:
    """The section input from the store's shadow log (the answers logged since ``since``; None: the
    whole log), or None when it holds no mirrored pair of the spec's incumbent and candidates."""
    if not has_shadow_log(store):
        return None
    assert store is not None
    incumbent, candidates = spec.incumbent, list(spec.candidates)
    settings = _gateway_settings(spec)
    report = build_report(store, incumbent, candidates, since=since, examples=max_examples, settings=settings)
    answers = load_answers(store, since=since, models=[incumbent, *candidates], with_request=True)
    overall = {r["candidate"]: r for r in report.rows if r["request_type"] == ALL and r["pairs"]}
    several = len(overall) > 1
    models: list[ModelTraffic] = []
    found: list[Example] = []
    every: list[Pair] = []
    rows = []
    per_candidate = max(1, max_examples // max(len(overall), 1))
    for candidate, row in overall.items():
        matched = pairs(answers, incumbent, candidate)
        every += matched
        rows += [_disagreements(r) for r in report.rows if r["candidate"] == candidate]  # all, then each type
        models.append(
            _traffic(
                incumbent,
                row["incumbent_stats"],
                [p.incumbent for p in matched],
                None,
                candidate if several else None,
            )
        )
        models.append(
            _traffic(candidate, row["candidate_stats"], [p.candidate for p in matched], row["format_drift_rate"], None)
        )
        found += _examples(row, matched, min(per_candidate, max_examples - len(found)))
    if not overall:
        return None
    return ShadowStats(
        models=models,
        examples=found,
        source=SHADOW_LOG,
        store=store.display_url,
        since=since.isoformat() if since is not None else None,
        period=_period(list({p.incumbent.request_id: p for p in every}.values())),  # each request once
        disagreements=rows,
    )


def shadow_section(
    records: list[Record], spec: MigrationSpec, store: Store | None, max_examples: int = 6
) -> ShadowStats | None:
    """The gateway's shadow log when the store holds one, else the records the decision reads."""
    from_log = shadow_log_stats(store, spec, max_examples)
    if from_log is not None:
        return from_log
    stats = shadow_stats(records, spec, max_examples)
    if stats is not None and store is not None:
        stats.store = store.display_url  # read, and holding no shadow log of these models
    return stats
