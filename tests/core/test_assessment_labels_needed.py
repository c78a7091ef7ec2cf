"""One 'labels still needed': the service's number is the JSON's, the report's and each dimension's."""

from changeover.assessment import assess
from changeover.config import spec_from_dict
from changeover.records import record_from_dict
from changeover.report import build_report
from changeover.stats.simulate import Scenario

from .conftest import scenario_records


def test_labels_needed_is_one_number_everywhere_and_bounded_by_the_responses():
    sc = Scenario("equal", [0.8, 0.8], [0.8, 0.8], items_per_segment=150, labels_per_segment=5)
    spec = spec_from_dict(
        {"incumbent": "legacy", "candidates": ["cand"], "segment_by": ["region"], "dimensions": {"correctness": {}}}
    )
    records = [record_from_dict(r, "row") for r in scenario_records(sc, 31)]
    a = assess(spec, records)
    assert a.verdict == "NEED-LABELS"
    n = a.labels_needed["cand"]["correctness"]
    assert n > 0
    assert a.to_json()["labels_needed"] == {"cand": {"correctness": n}}
    assert a.decision.candidates["cand"].dimensions["correctness"].labels_needed == n
    open_responses = sum(1 for r in records if not r.labels)
    assert n <= open_responses  # never more labels than there are unlabelled responses
    report = build_report(a, spec, records)
    assert report.inputs.labels.needed == {"cand": {"correctness": n}}
    assert f"about {n:,} more" in " ".join(report.verdict.candidates[0].reasons)
