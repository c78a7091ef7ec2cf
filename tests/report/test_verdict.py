"""The verdict in plain words: headline per verdict, and reasons naming where and how sure."""

from __future__ import annotations

import dataclasses

from changeover.assessment import Interval, Verdict, decision_from_json
from changeover.report.formatting import failures, plural, points, prob
from changeover.report.results import decision_of
from changeover.report.verdict import headline, verdict_text


def test_reasons_name_the_regressing_segment(spec, assessment):
    text = verdict_text(decision_of(assessment), spec)
    cand_b = next(c for c in text.candidates if c.name == "cand-b")
    correctness = next(r for r in cand_b.reasons if r.startswith("correctness"))
    assert "regression in apac" in correctness and "P(more than 2.0 pts worse)" in correctness
    assert cand_b.verdict == "NO-GO"


def test_headline_says_what_to_do(spec, assessment):
    decision = decision_of(assessment)
    for verdict, words in [
        (Verdict.GO, "can replace legacy-model"),
        (Verdict.NO_GO, "do not switch"),
        (Verdict.NEED_LABELS, "more human labels"),
    ]:
        assert words in headline(dataclasses.replace(decision, verdict=verdict), spec)


def test_number_formats_read_naturally():
    assert points(0.0123) == "+1.2 pts" and points(-0.004) == "−0.4 pts"
    assert prob(0.999) == ">0.99" and prob(0.5) == "0.50"
    assert failures(Interval(-1234.0, -2000.0, -500.0)) == "~1,200 fewer failures/month"
    assert failures(Interval(56789.0, 1.0, 9e4)) == "~57,000 extra failures/month"
    assert plural(2, "category") == "categories" and plural(1, "region") == "region"


def test_failed_calls_borderline_and_unconverged_are_said(spec, assessment):
    result = assessment.to_json()
    result = {**result, "error_rates": {"cand-b": {"errors": 30, "responses": 300, "rate": 0.1}}}
    cand_a = next(iter(result["candidates"]))
    dims = result["candidates"][cand_a]["dimensions"]
    first = next(iter(dims))
    overall = {**dims[first]["overall"], "verdict": "inconclusive", "borderline": True}
    dims[first] = {**dims[first], "verdict": "inconclusive", "overall": overall}
    text = verdict_text(decision_from_json(result), spec)
    cand_b = next(c for c in text.candidates if c.name == "cand-b")
    assert any("failed calls" in r and "cand-b 30 of 300 (10.0%)" in r for r in cand_b.reasons)
    a = next(c for c in text.candidates if c.name == cand_a)
    assert "borderline" in a.reasons[0] and "never GO" in a.reasons[0]
    dims[first] = {**dims[first], "converged": False}
    again = next(c for c in verdict_text(decision_from_json(result), spec).candidates if c.name == cand_a)
    assert "did not converge" in again.reasons[0]
