"""The verdict and its reasons in plain words, from the assessment's JSON (issue 2).

One headline for the migration, then per candidate a one-line summary and a reason per
dimension that says what was decided, where, and with what probability. The HTML report
and the Markdown summary both print these sentences, so they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from changeover.config import MigrationSpec
from changeover.report.formatting import count, failures, impact, interval, plural, points, prob, prob_is


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


def dimension_reason(name: str, dim: dict[str, Any], spec: MigrationSpec, needed: int | None) -> str:
    """One sentence: what was decided on this dimension, where, and how sure."""
    g = spec.confidence
    margin = spec.dimensions[name].margin if name in spec.dimensions else 0.0
    o = dim["overall"]
    segs = _required(spec, dim.get("segments", {}))
    delta = f"Δ {points(o['delta']['mean'])} {interval(o['delta'], as_points=True)}"
    within = f"no worse than {100 * margin:.1f} pts below {spec.incumbent}"
    verdict = dim["verdict"]
    if verdict in ("superior", "non-inferior"):
        where = ""
        if len(segs) > 1:
            worst = min(float(s["p_noninferior"]) for s in segs.values())
            where = (f"; non-inferior in all {len(segs)} {_segments_word(spec, len(segs))} "
                     f"(lowest P {prob_is(worst)})")
        if verdict == "superior":
            return (f"{name}: superior — P(better than {spec.incumbent}) {prob_is(o['p_superior'])} overall"
                    f"{where}; {delta}.")
        return f"{name}: non-inferior — P({within}) {prob_is(o['p_noninferior'])} overall{where}; {delta}."
    if verdict == "regression":
        bad = [k for k, s in segs.items() if float(s["p_regression"]) >= g]
        overall_bad = float(o["p_regression"]) >= g
        places = (["overall"] if overall_bad else []) + bad
        worst = max([float(o["p_regression"])] + [float(segs[k]["p_regression"]) for k in bad])
        return (f"{name}: regression in {', '.join(places) or 'a required segment'} — "
                f"P(more than {100 * margin:.1f} pts worse) {prob_is(worst)}; {delta}.")
    open_ = [k for k, s in segs.items()
             if float(s["p_noninferior"]) < g and float(s["p_regression"]) < g]
    if float(o["p_noninferior"]) < g and float(o["p_regression"]) < g:
        open_ = ["overall", *open_]
    lowest = min([float(o["p_noninferior"])] + [float(segs[k]["p_noninferior"]) for k in open_ if k in segs])
    more = f"; about {count(needed)} more {plural(needed or 0, 'label')} needed" if needed else ""
    places = [k for k in open_ if k != "overall"]
    shown = ", ".join(places[:4]) + (f" and {len(places) - 4} more" if len(places) > 4 else "")
    if "overall" in open_:
        shown = "overall" + (f" and in {shown}" if shown else "")
    else:
        shown = f"in {shown}" if shown else "in a required segment"
    return (f"{name}: not yet decided {shown} — lowest P({within}) {prob_is(lowest)}, "
            f"below the {g:.0%} required{more}; {delta}.")


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
        reasons = [dimension_reason(d, dim, spec, (needed.get(name) or {}).get(d))
                   for d, dim in data["dimensions"].items()]
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
        names = " and ".join(by.get("GO", [])) or "the candidate"
        return (f"GO: {names} can replace {spec.incumbent}. At {conf} confidence it is no worse beyond the "
                "stated margins on every required dimension, overall and in every required segment.")
    if verdict == "NO-GO":
        names = " and ".join(by.get("NO-GO", [])) or "a candidate"
        return (f"NO-GO: {names} would make things worse. At {conf} confidence there is a regression beyond "
                "the margin on a required dimension; do not switch.")
    total = sum(int(v) for per in (result.get("labels_needed") or {}).values() for v in per.values())
    more = f" About {total:,} more human labels should settle it." if total else ""
    return (f"NEED-LABELS: the evidence is not yet strong enough to decide at {conf} confidence "
            f"whether the candidates are as good as {spec.incumbent}.{more}")
