"""The decision JSON is written from the typed result and matches docs/decision.schema.json."""

import json
from pathlib import Path

import jsonschema
import pytest

from changeover.assessment import Call, ConvergenceWarning, SamplingPolicy, Verdict, assess
from changeover.cli import run
from changeover.config import spec_from_dict
from changeover.records import record_from_dict
from changeover.stats.simulate import Scenario

from .conftest import scenario_records, write_jsonl

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "decision.schema.json").read_text())


def _validate(decision: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(decision, SCHEMA, cls=jsonschema.Draft202012Validator)


def test_assess_json_matches_the_schema(tmp_path, spec_path):
    sc = Scenario("better", [0.7, 0.75], [0.85, 0.9], items_per_segment=200, labels_per_segment=40)
    records = write_jsonl(tmp_path / "r.jsonl", scenario_records(sc, 1))
    out = tmp_path / "decision.json"
    assert run(["assess", "--spec", str(spec_path), "--records", str(records), "--json", str(out)]) == 0
    decision = json.loads(out.read_text())
    _validate(decision)
    bad = {**decision, "verdict": "MAYBE"}
    with pytest.raises(jsonschema.ValidationError):  # the schema is not a rubber stamp
        jsonschema.validate(bad, SCHEMA)


def test_demo_decision_matches_the_schema(tmp_path):
    from changeover import demo

    result = demo.run(tmp_path / "demo")
    _validate(json.loads(result.decision_path.read_text()))
    assert result.decision_path.exists() and result.report_path.exists()


def test_typed_result_and_json_agree():
    sc = Scenario("worse", [0.85, 0.85], [0.65, 0.70], items_per_segment=200, labels_per_segment=40)
    rows = scenario_records(sc, 2)
    spec = spec_from_dict(
        {
            "incumbent": "legacy",
            "candidates": ["cand"],
            "segment_by": ["region"],
            "dimensions": {"correctness": {"margin": 0.02}},
        }
    )
    a = assess(spec, [record_from_dict(r, "row") for r in rows])
    assert a.verdict is Verdict.NO_GO and a.verdict == "NO-GO" and a.exit_code == 1
    dim = a.decision.candidates["cand"].dimensions["correctness"]
    assert dim.call is Call.REGRESSION
    assert dim.overall.delta.kind == "eti" and dim.overall.delta.prob == 0.95
    assert 0 <= dim.overall.p_regression.mcse < 0.05
    j = a.to_json()
    o = j["candidates"]["cand"]["dimensions"]["correctness"]["overall"]
    assert o["delta"]["mean"] == dim.overall.delta.mean
    assert o["p_regression"] == dim.overall.p_regression.value
    assert o["mcse"]["p_regression"] == dim.overall.p_regression.mcse
    assert j["diagnostics"]["ess_tail_min"] == a.decision.diagnostics.ess_tail_min
    assert set(a.decision.diagnostics.judge["correctness"]) == {"legacy", "cand"}
    by_segment = a.decision.diagnostics.judge_by_segment["correctness"]
    assert set(by_segment) == {"r0", "r1"} and set(by_segment["r0"]) == {"legacy", "cand"}
    assert 0 < by_segment["r1"]["cand"].sensitivity < 1
    _validate(j)


def test_an_unconverged_fit_gives_no_go_or_no_go_but_need_labels():
    """A clear regression, but a policy the fit cannot meet: the verdict is NEED-LABELS, 'posterior not converged'."""
    sc = Scenario("worse", [0.85], [0.6], items_per_segment=200, labels_per_segment=40)
    spec = spec_from_dict({"incumbent": "legacy", "candidates": ["cand"], "dimensions": {"correctness": {}}})
    records = [record_from_dict(r, "row") for r in scenario_records(sc, 3)]
    policy = SamplingPolicy(ess_min=1e9, max_scale=2)  # unreachable: one longer round, then give up
    with pytest.warns(ConvergenceWarning, match="posterior not converged"):
        a = assess(spec, records, draws=60, warmup=60, policy=policy)
    assert a.verdict == "NEED-LABELS" and a.exit_code == 3
    assert a.decision.reason == "posterior not converged"
    assert a.decision.candidates["cand"].reason == "posterior not converged"
    sampling = a.decision.diagnostics.sampling
    assert sampling.draws == 120 and 2 <= sampling.rounds <= policy.max_rounds + 1  # up to the bound (smaller steps)
    assert a.to_json()["diagnostics"]["converged"] is False
    clear = assess(spec, records)
    assert clear.verdict == "NO-GO"  # the same data, converged


def _close(a, b, path="$"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, abs=1e-12), path
    else:
        assert a == b, path


def test_the_json_reads_back_into_the_same_typed_result():
    from changeover.assessment import decision_from_json, decision_json

    sc = Scenario("equal", [0.8, 0.8], [0.8, 0.8], items_per_segment=150, labels_per_segment=10)
    spec = spec_from_dict(
        {
            "incumbent": "legacy",
            "candidates": ["cand"],
            "segment_by": ["region"],
            "traffic": {"monthly_interactions": 1000},
            "dimensions": {"correctness": {}},
        }
    )
    a = assess(spec, [record_from_dict(r, "row") for r in scenario_records(sc, 4)])
    j = a.to_json()
    back = decision_from_json(json.loads(json.dumps(j)))
    assert back.verdict is a.verdict
    assert (
        back.candidates["cand"].dimensions["correctness"].overall
        == a.candidates["cand"].dimensions["correctness"].overall
    )
    _close(j, decision_json(back))


def test_a_decision_read_repeatedly_says_its_look_and_needs_more(tmp_path, spec_path):
    """`assess --looks N`: the threshold is the look-adjusted one (stats.stopping), written in the JSON."""
    from changeover.stats.stopping import confidence_at_look

    sc = Scenario("better", [0.7, 0.75], [0.85, 0.9], items_per_segment=200, labels_per_segment=40)
    records = write_jsonl(tmp_path / "r.jsonl", scenario_records(sc, 1))
    once, looked = tmp_path / "once.json", tmp_path / "looked.json"
    run(["assess", "--spec", str(spec_path), "--records", str(records), "--json", str(once)])
    run(["assess", "--spec", str(spec_path), "--records", str(records), "--json", str(looked), "--looks", "10"])
    a, b = json.loads(once.read_text()), json.loads(looked.read_text())
    _validate(b)
    assert a["looks"] is None and a["threshold"] == a["confidence"]
    assert b["looks"] == 10 and b["threshold"] == pytest.approx(confidence_at_look(b["confidence"], 10))
    assert b["threshold"] > b["confidence"]
