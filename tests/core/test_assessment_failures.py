"""Failed calls are failures: an error (or an empty answer) is known unacceptable, on every dimension."""

import json

from changeover.assessment import assess, failed
from changeover.cli import run
from changeover.config import spec_from_dict
from changeover.records import record_from_dict
from changeover.stats.simulate import Scenario

from .conftest import scenario_records, write_jsonl

SPEC = {
    "incumbent": "legacy",
    "candidates": ["cand"],
    "segment_by": ["region"],
    "traffic": {"monthly_interactions": 1_000_000},
    "dimensions": {"correctness": {"margin": 0.02}},
}
FAST: dict[str, int] = {}  # the default sampler settings


def _all_failed(rows):
    """Every candidate response is an upstream error with no signal and no label."""
    out = []
    for r in rows:
        if r["model"] == "cand":
            r = {"item": r["item"], "model": "cand", "segment": r["segment"], "error": "upstream returned 503"}
        out.append(r)
    return out


def _records(rows):
    return [record_from_dict(r, f"row {i}") for i, r in enumerate(rows)]


def test_a_candidate_whose_every_call_failed_is_no_go_exit_1(tmp_path, spec_path, capsys):
    sc = Scenario("equal", [0.8, 0.8], [0.8, 0.8], items_per_segment=150, labels_per_segment=20)
    records = write_jsonl(tmp_path / "r.jsonl", _all_failed(scenario_records(sc, 11)))
    out = tmp_path / "decision.json"
    rc = run(["assess", "--spec", str(spec_path), "--records", str(records), "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 1
    decision = json.loads(out.read_text())
    assert decision["verdict"] == "NO-GO"
    dim = decision["candidates"]["cand"]["dimensions"]["correctness"]
    assert dim["overall"]["delta"]["upper"] < -0.5  # the user got no answer: ~80 points worse, not "+12"
    assert dim["known_failures"] == {"legacy": 0, "cand": 300}
    assert decision["error_rates"]["cand"] == {"errors": 300, "responses": 300, "rate": 1.0}
    assert decision["error_rates"]["legacy"]["errors"] == 0
    assert not [x for x in decision["next_labels"] if x["model"] == "cand"]  # a failure needs no label
    assert set(decision["diagnostics"]["judge"]["correctness"]) == {"legacy"}  # no scored answer: no confusion
    assert "failed calls" in text and "cand 100.0% (300/300)" in text


def test_an_all_failed_candidate_is_no_go_for_every_seed():
    """Its comparison is hard to sample (the spread of the judge's segment deviations is informed by the
    incumbent's alone): its posterior is stiff, NUTS starts it with small steps (target 0.975) and, where it
    still diverges, samples it again (1-2 rounds over seeds 0-11; before the stiffness check NUTS diverged at
    0.8 and the policy handed it to the HMC, four rounds for seed 0). Whatever the seed, the verdict is NO-GO,
    from a converged posterior."""
    sc = Scenario("equal", [0.8, 0.8], [0.8, 0.8], items_per_segment=150, labels_per_segment=20)
    records = _records(_all_failed(scenario_records(sc, 11)))
    spec = spec_from_dict(SPEC)
    for seed in range(6):
        a = assess(spec, records, seed=seed)
        assert a.verdict == "NO-GO" and a.decision.diagnostics.sampling.converged, seed


def test_errors_exclude_leaves_the_failed_responses_out():
    sc = Scenario("equal", [0.8], [0.8], items_per_segment=300, labels_per_segment=60)
    rows = scenario_records(sc, 12)
    broken = {r["item"] for r in rows[::10]}  # a tenth of the items: the candidate's call failed
    rows = [{**r, "error": "timeout"} if r["model"] == "cand" and r["item"] in broken else r for r in rows]
    spec = spec_from_dict({**SPEC, "segment_by": [], "dimensions": {"correctness": {"errors": "exclude"}}})
    a = assess(spec, _records(rows), **FAST)
    dim = a.decision.candidates["cand"].dimensions["correctness"]
    assert dim.excluded == {"legacy": 0, "cand": len(broken)}
    assert dim.known_failures == {"legacy": 0, "cand": 0}
    assert dim.paired_items == 300 - len(broken)
    assert dim.overall.delta.lower < 0 < dim.overall.delta.upper  # the same model otherwise: no failures counted
    assert a.decision.error_rates["cand"].errors == len(broken)  # still reported


def test_an_empty_answer_is_a_failure_and_a_missing_text_is_not():
    rec = record_from_dict({"item": "a", "model": "m", "response": "  "}, "row")
    assert failed(rec)
    assert failed(record_from_dict({"item": "a", "model": "m", "error": "rate limited"}, "row"))
    assert not failed(record_from_dict({"item": "a", "model": "m", "signals": {"x": 1}}, "row"))


def test_an_item_one_model_never_answered_is_not_an_error_and_never_ranked():
    sc = Scenario("equal", [0.8], [0.8], items_per_segment=200, labels_per_segment=5)
    rows = scenario_records(sc, 13)
    dropped = {r["item"] for r in rows[:40]}
    rows = [r for r in rows if not (r["model"] == "cand" and r["item"] in dropped)]
    spec = spec_from_dict({**SPEC, "segment_by": []})
    a = assess(spec, _records(rows), **FAST)
    assert a.decision.error_rates["cand"].errors == 0
    assert a.verdict == "NEED-LABELS"
    assert a.next_labels and not {x["item"] for x in a.next_labels} & dropped
