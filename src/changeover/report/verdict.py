"""The verdict and its reasons in plain words, from the typed decision.

One headline for the migration, then per candidate a one-line summary and a reason per
dimension that says what was decided, where, and with what probability. The HTML report
and the Markdown summary both print these sentences, so they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from changeover.assessment.result import Call, CandidateResult, Decision, DimensionResult, SegmentResult, Verdict
from changeover.assessment.words import unstable_words
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


def _required(spec: MigrationSpec, d: DimensionResult) -> dict[str, SegmentResult]:
    if len(d.segments) <= 1:
        return {}
    if spec.required_segments == "all":
        return dict(d.segments)
    return {k: v for k, v in d.segments.items() if k in spec.required_segments}


def _delta(block: SegmentResult) -> str:
    return f"Δ {points(block.delta.mean)} {interval_short(block.delta)}"


def _places(items: list[tuple[str, SegmentResult]], key: str, limit: int = 3) -> str:
    """'unsafe (P = 0.94, Δ +1.2 pts [−3.0, +5.5])' for the first ``limit`` places."""
    shown = [f"{name} (P {prob_is(getattr(b, key).value)}, {_delta(b)})" for name, b in items[:limit]]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(shown) + more


def dimension_reason(d: DimensionResult, spec: MigrationSpec) -> str:
    """One sentence: what was decided on this dimension, where, and how sure."""
    if not d.converged:
        more = (
            f"; about {count(d.labels_needed)} more {plural(d.labels_needed, 'label')} needed"
            if d.labels_needed
            else ""
        )
        return (
            f"{d.name}: not decided — the posterior did not converge (R-hat, ESS or divergences off target "
            f"after sampling longer), so it gives no GO or NO-GO; rerun with more --draws/--warmup{more}."
        )
    reason = _dimension_reason(d, spec)
    if d.borderline and d.call == Call.INCONCLUSIVE:
        reason = reason.removesuffix(".") + (
            "; borderline: a deciding probability is within 2 Monte Carlo errors of the threshold, so it is "
            "decided conservatively (never GO)."
        )
    return reason


def _dimension_reason(d: DimensionResult, spec: MigrationSpec) -> str:
    g, name, o = spec.confidence, d.name, d.overall
    margin = spec.dimensions[name].margin if name in spec.dimensions else d.margin
    segs = _required(spec, d)
    within = f"no worse than {100 * margin:.1f} pts below {spec.incumbent}"
    if d.call in (Call.SUPERIOR, Call.NONINFERIOR):
        where = ""
        if segs:
            worst = min(b.p_noninferior.value for b in segs.values())
            where = f"; non-inferior in all {len(segs)} {_segments_word(spec, len(segs))} (lowest P {prob_is(worst)})"
        if d.call == Call.SUPERIOR:
            return (
                f"{name}: superior — P(better than {spec.incumbent}) {prob_is(o.p_superior.value)} overall"
                f"{where}; {_delta(o)}."
            )
        return f"{name}: non-inferior — P({within}) {prob_is(o.p_noninferior.value)} overall{where}; {_delta(o)}."
    if d.call == Call.REGRESSION:
        bad = [(k, b) for k, b in segs.items() if b.call == Call.REGRESSION]
        if o.call == Call.REGRESSION:
            bad = [("overall", o), *bad]
        (where, first), rest = (bad or [("overall", o)])[0], bad[1:]
        also = f"; also in {_places(rest, 'p_regression')}" if rest else ""
        return (
            f"{name}: regression in {where} — P(more than {100 * margin:.1f} pts worse) "
            f"{prob_is(first.p_regression.value)}; {_delta(first)}{also}."
        )
    open_ = [(k, b) for k, b in segs.items() if b.call == Call.INCONCLUSIVE]
    needed = d.labels_needed
    more = f"; about {count(needed)} more {plural(needed, 'label')} needed" if needed else ""
    if o.call == Call.INCONCLUSIVE:
        head = (
            f"{name}: not yet decided overall — P({within}) {prob_is(o.p_noninferior.value)}, "
            f"below the {g:.0%} required; {_delta(o)}"
        )
        tail = f"; also open in {_places(open_, 'p_noninferior')}" if open_ else ""
        return head + tail + more + "."
    return (
        f"{name}: {o.call} overall ({_delta(o)}) but not yet decided in "
        f"{_places(open_, 'p_noninferior') or 'a required segment'}, where P({within}) "
        f"must reach {g:.0%}{more}."
    )


def failed_calls_reason(name: str, decision: Decision, spec: MigrationSpec) -> str | None:
    """A sentence when the incumbent's or the candidate's calls failed (they count as unacceptable)."""
    rates = decision.error_rates
    parts = [
        f"{m} {count(e.errors)} of {count(e.responses)} ({100 * e.rate:.1f}%)"
        for m in (spec.incumbent, name)
        if (e := rates.get(m)) is not None and e.errors > 0
    ]
    if not parts:
        return None
    return "failed calls (an error or an empty answer, counted as unacceptable): " + ", ".join(parts) + "."


def _candidate_summary(c: CandidateResult) -> str:
    words = []
    for name, d in c.dimensions.items():
        p = {Call.SUPERIOR: d.overall.p_superior, Call.REGRESSION: d.overall.p_regression}.get(
            d.call, d.overall.p_noninferior
        )
        words.append(f"{name} {d.call} (P={prob(p.value)})")
    impacts = [(n, failures(impact(d.overall))) for n, d in c.dimensions.items()]
    impact_text = "; ".join(f"{n}: {i}" for n, i in impacts if i != "—")
    return f"{c.name}: {c.verdict} — " + ", ".join(words) + (f"; {impact_text}" if impact_text else "")


def verdict_text(decision: Decision, spec: MigrationSpec) -> VerdictText:
    """The headline and every candidate's reasons."""
    cands = []
    for name, c in decision.candidates.items():
        reasons = [dimension_reason(d, spec) for d in c.dimensions.values()]
        if (failures_line := failed_calls_reason(name, decision, spec)) is not None:
            reasons.append(failures_line)
        if (unstable := unstable_words(c, spec.incumbent)) is not None:
            reasons.append(unstable)
        cands.append(CandidateReasons(name, str(c.verdict), _candidate_summary(c), reasons))
    return VerdictText(str(decision.verdict), headline(decision, spec), cands)


def headline(decision: Decision, spec: MigrationSpec) -> str:
    """The first sentence a decision-maker reads."""
    by: dict[str, list[str]] = {}
    for name, c in decision.candidates.items():
        by.setdefault(str(c.verdict), []).append(name)
    conf = f"{spec.confidence:.0%}"
    if decision.verdict == Verdict.GO:
        go = by.get("GO", [])
        names = " and ".join(go) or "the candidate"
        subject = "each" if len(go) > 1 else "it"
        return (
            f"GO: {names} can replace {spec.incumbent}. At {conf} confidence {subject} is no worse beyond the "
            "stated margins on every required dimension, overall and in every required segment."
        )
    if decision.verdict == Verdict.NO_GO:
        names = " and ".join(by.get("NO-GO", [])) or "a candidate"
        return (
            f"NO-GO: {names} would make things worse. At {conf} confidence there is a regression beyond "
            "the margin on a required dimension; do not switch."
        )
    total = sum(int(v) for per in decision.labels_needed.values() for v in per.values())
    more = f" About {total:,} more human labels should settle it." if total else ""
    why = " The posterior did not converge: no GO or NO-GO until it does." if decision.reason else ""
    return (
        f"NEED-LABELS: the evidence is not yet strong enough to decide at {conf} confidence "
        f"whether the candidates are as good as {spec.incumbent}.{more}{why}"
    )
