"""The verdict and its reasons in plain words, from the assessment's JSON (issue 2).

One headline for the migration, then per candidate a one-line summary and a reason per
dimension that says what was decided, where, and with what probability. The HTML report
and the Markdown summary both print these sentences, so they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from changeover.config import MigrationSpec
from changeover.report.formatting import count, failures, impact, interval_short, plural, points, prob, prob_is


@dataclass(slots=True)
class CandidateReasons:
    name: str
    verdict: str
    summary: str
    reasons: list[str] = field(default_factory=list)


@dataclass(slots=True)
class VerdictText:
    verdict: str
    headline: str
    candidates: list[CandidateReasons]


def _segments_word(spec: MigrationSpec, n: int) -> str:
    """'region' -> 'regions' for the spec's single split field, else 'segments'."""
    noun = spec.segment_by[-1].replace("_", " ") if len(spec.segment_by) == 1 else "segment"
    return plural(n, noun)


def _required(spec: MigrationSpec, segments: dict[str, Any]) -> dict[str, Any]:
    if spec.required_segments == "all":
        return segments
    return {k: v for k, v in segments.items() if k in spec.required_segments}


def _delta(block: dict[str, Any]) -> str:
    return f"Δ {points(block['delta']['mean'])} {interval_short(block['delta'])}"


def block_verdict(block: dict[str, Any], g: float) -> str:
    """A block's verdict as the assessment gave it, or from its probabilities."""
    if block.get("verdict"):
        return str(block["verdict"])
    if float(block["p_regression"]) >= g:
        return "regression"
    if float(block["p_superior"]) >= g:
        return "superior"
    return "non-inferior" if float(block["p_noninferior"]) >= g else "inconclusive"


def _places(items: list[tuple[str, dict[str, Any]]], key: str, limit: int = 3) -> str:
    """'unsafe (P = 0.94, Δ +1.2 pts [−3.0, +5.5])' for the first ``limit`` places."""
    shown = [f"{name} (P {prob_is(float(b[key]))}, {_delta(b)})" for name, b in items[:limit]]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(shown) + more


def dimension_reason(name: str, dim: dict[str, Any], spec: MigrationSpec, needed: int | None) -> str:
    """One sentence: what was decided on this dimension, where, and how sure."""
    if dim.get("converged") is False:
        return (
            f"{name}: not decided — the posterior did not converge (R-hat, ESS or divergences off target "
            "after sampling longer), so it gives no GO or NO-GO; rerun with more --draws/--warmup."
        )
    reason = _dimension_reason(name, dim, spec, needed)
    if dim.get("borderline") and dim.get("verdict") == "inconclusive":
        reason = reason.removesuffix(".") + (
            "; borderline: a deciding probability is within 2 Monte Carlo errors of the threshold, so it is "
            "decided conservatively (never GO)."
        )
    return reason


def failed_calls_reason(name: str, result: dict[str, Any], spec: MigrationSpec) -> str | None:
    """A sentence when the incumbent's or the candidate's calls failed (they count as unacceptable)."""
    rates = result.get("error_rates") or {}
    parts = [
        f"{m} {count(int(e['errors']))} of {count(int(e['responses']))} ({100 * float(e['rate']):.1f}%)"
        for m in (spec.incumbent, name)
        if (e := rates.get(m)) and int(e.get("errors") or 0) > 0
    ]
    if not parts:
        return None
    return "failed calls (an error or an empty answer, counted as unacceptable): " + ", ".join(parts) + "."


def _dimension_reason(name: str, dim: dict[str, Any], spec: MigrationSpec, needed: int | None) -> str:
    g = spec.confidence
    margin = spec.dimensions[name].margin if name in spec.dimensions else 0.0
    o = dim["overall"]
    segs = _required(spec, dim.get("segments", {})) if len(dim.get("segments", {})) > 1 else {}
    within = f"no worse than {100 * margin:.1f} pts below {spec.incumbent}"
    verdict = dim["verdict"]
    overall_verdict = block_verdict(o, g)
    if verdict in ("superior", "non-inferior"):
        where = ""
        if segs:
            worst = min(float(b["p_noninferior"]) for b in segs.values())
            where = f"; non-inferior in all {len(segs)} {_segments_word(spec, len(segs))} (lowest P {prob_is(worst)})"
        if verdict == "superior":
            return (
                f"{name}: superior — P(better than {spec.incumbent}) {prob_is(o['p_superior'])} overall"
                f"{where}; {_delta(o)}."
            )
        return f"{name}: non-inferior — P({within}) {prob_is(o['p_noninferior'])} overall{where}; {_delta(o)}."
    if verdict == "regression":
        bad = [(k, b) for k, b in segs.items() if block_verdict(b, g) == "regression"]
        if overall_verdict == "regression":
            bad = [("overall", o), *bad]
        (where, first), rest = (bad or [("overall", o)])[0], bad[1:]
        also = f"; also in {_places(rest, 'p_regression')}" if rest else ""
        return (
            f"{name}: regression in {where} — P(more than {100 * margin:.1f} pts worse) "
            f"{prob_is(float(first['p_regression']))}; {_delta(first)}{also}."
        )
    open_ = [(k, b) for k, b in segs.items() if block_verdict(b, g) == "inconclusive"]
    more = f"; about {count(needed)} more {plural(needed or 0, 'label')} needed" if needed else ""
    if overall_verdict == "inconclusive":
        head = (
            f"{name}: not yet decided overall — P({within}) {prob_is(o['p_noninferior'])}, "
            f"below the {g:.0%} required; {_delta(o)}"
        )
        tail = f"; also open in {_places(open_, 'p_noninferior')}" if open_ else ""
        return head + tail + more + "."
    return (
        f"{name}: {overall_verdict} overall ({_delta(o)}) but not yet decided in "
        f"{_places(open_, 'p_noninferior') or 'a required segment'}, where P({within}) "
        f"must reach {g:.0%}{more}."
    )


def _candidate_summary(name: str, data: dict[str, Any], spec: MigrationSpec) -> str:
    dims = data["dimensions"]
    words = []
    for dim_name, dim in dims.items():
        key = {"superior": "p_superior", "regression": "p_regression"}.get(dim["verdict"], "p_noninferior")
        words.append(f"{dim_name} {dim['verdict']} (P={prob(dim['overall'][key])})")
    impact_words = [failures(impact(d["overall"])) for d in dims.values()]
    impact_text = "; ".join(f"{n}: {i}" for n, i in zip(dims, impact_words, strict=True) if i != "—")
    return f"{name}: {data['verdict']} — " + ", ".join(words) + (f"; {impact_text}" if impact_text else "")


def verdict_text(result: dict[str, Any], spec: MigrationSpec) -> VerdictText:
    """The headline and every candidate's reasons, from issue 2's JSON."""
    needed = result.get("labels_needed") or {}
    cands = []
    for name, data in result["candidates"].items():
        reasons = [
            dimension_reason(d, dim, spec, (needed.get(name) or {}).get(d)) for d, dim in data["dimensions"].items()
        ]
        if (failures_line := failed_calls_reason(name, result, spec)) is not None:
            reasons.append(failures_line)
        cands.append(CandidateReasons(name, data["verdict"], _candidate_summary(name, data, spec), reasons))
    return VerdictText(result["verdict"], headline(result, spec), cands)


def headline(result: dict[str, Any], spec: MigrationSpec) -> str:
    """The first sentence a decision-maker reads."""
    verdict = result["verdict"]
    by = {}
    for name, data in result["candidates"].items():
        by.setdefault(data["verdict"], []).append(name)
    conf = f"{spec.confidence:.0%}"
    if verdict == "GO":
        go = by.get("GO", [])
        names = " and ".join(go) or "the candidate"
        subject = "each" if len(go) > 1 else "it"
        return (
            f"GO: {names} can replace {spec.incumbent}. At {conf} confidence {subject} is no worse beyond the "
            "stated margins on every required dimension, overall and in every required segment."
        )
    if verdict == "NO-GO":
        names = " and ".join(by.get("NO-GO", [])) or "a candidate"
        return (
            f"NO-GO: {names} would make things worse. At {conf} confidence there is a regression beyond "
            "the margin on a required dimension; do not switch."
        )
    total = sum(int(v) for per in (result.get("labels_needed") or {}).values() for v in per.values())
    more = f" About {total:,} more human labels should settle it." if total else ""
    return (
        f"NEED-LABELS: the evidence is not yet strong enough to decide at {conf} confidence "
        f"whether the candidates are as good as {spec.incumbent}.{more}"
    )
