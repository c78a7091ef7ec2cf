"""The decision as JUnit XML: one test case per candidate x dimension x segment, for CI test reporters.

A case passes when the comparison is non-inferior (or superior) at the spec's
confidence, fails (``<failure type="regression">``) on a regression, and is
``<skipped>`` while inconclusive or borderline (not yet decided: the pipeline's
exit code 3, not this file, is what gates). A posterior that has not converged
is an ``<error>``. Dimensions the spec does not require are reported as
skipped with their call, so they never turn a report red on their own.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from changeover.assessment.result import NOT_CONVERGED, Call, Decision, DimensionResult, SegmentResult
from changeover.stats.decision import PASSING


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _detail(d: DimensionResult, s: SegmentResult, confidence: float) -> str:
    return (
        f"{s.call.value}: delta {_pts(s.delta.mean)} [{_pts(s.delta.lower)}, {_pts(s.delta.upper)}] pts "
        f"({confidence:.0%} interval), P(non-inferior)={s.p_noninferior.value:.3f} "
        f"(MCSE {s.p_noninferior.mcse:.3f}), P(regression)={s.p_regression.value:.3f}, margin {100 * d.margin:.1f} pts"
        + ("; borderline: another seed could decide otherwise" if s.borderline else "")
    )


def _case(suite: ET.Element, candidate: str, d: DimensionResult, s: SegmentResult, confidence: float) -> str:
    case = ET.SubElement(suite, "testcase", classname=f"changeover.{candidate}.{d.name}", name=s.name, time="0")
    detail = _detail(d, s, confidence)
    if not d.converged:
        ET.SubElement(case, "error", type="not-converged", message=f"{NOT_CONVERGED}; {detail}")
        return "errors"
    if not d.required or (s.name != "overall" and not s.required):
        ET.SubElement(case, "skipped", message=f"not required; {detail}")
        return "skipped"
    if s.call == Call.REGRESSION:
        ET.SubElement(case, "failure", type="regression", message=detail)
        return "failures"
    if s.call in PASSING and not s.borderline:
        ET.SubElement(case, "system-out").text = detail
        return "passed"
    ET.SubElement(case, "skipped", message=f"NEED-LABELS; {detail}")
    return "skipped"


def decision_junit(decision: Decision) -> str:
    """The JUnit XML document of a decision (one ``testsuite`` per candidate)."""
    root = ET.Element("testsuites", name="changeover")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for name, cand in decision.candidates.items():
        suite = ET.SubElement(root, "testsuite", name=f"changeover.{name}")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="verdict", value=str(cand.verdict.value))
        ET.SubElement(props, "property", name="incumbent", value=decision.incumbent)
        ET.SubElement(props, "property", name="confidence", value=f"{decision.confidence}")
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for d in cand.dimensions.values():
            for s in [d.overall, *(d.segments.values() if len(d.segments) > 1 else [])]:
                outcome = _case(suite, name, d, s, decision.confidence)
                counts["tests"] += 1
                if outcome != "passed":
                    counts[outcome] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
