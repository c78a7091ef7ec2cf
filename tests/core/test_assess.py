"""The assessment on records: verdicts, JSON shape, errors, and the real XSTest check."""

import random

import numpy as np
import pytest

from changeover.assess import assess
from changeover.config import spec_from_dict
from changeover.demo import bundled_records_path
from changeover.errors import DataError
from changeover.records import Record, read_records
from changeover.stats.simulate import Scenario

from .conftest import scenario_records


def _records(rows):
    from changeover.records import record_from_dict

    return [record_from_dict(r, f"row {i}") for i, r in enumerate(rows)]


SPEC = {
    "incumbent": "legacy",
    "candidates": ["cand"],
    "segment_by": ["region"],
    "traffic": {"monthly_interactions": 1_000_000},
    "dimensions": {"correctness": {"margin": 0.02}},
}


def test_json_has_the_documented_keys():
    sc = Scenario("better", [0.7, 0.75], [0.85, 0.9], items_per_segment=200, labels_per_segment=40)
    out = assess(spec_from_dict(SPEC), _records(scenario_records(sc, 1))).to_json()
    assert set(out) >= {"verdict", "confidence", "candidates", "labels_needed", "next_labels", "diagnostics"}
    dim = out["candidates"]["cand"]["dimensions"]["correctness"]
    assert dim["verdict"] in ("superior", "non-inferior", "inconclusive", "regression")
    for block in [dim["overall"], *dim["segments"].values()]:
        assert set(block) >= {
            "delta",
            "incumbent",
            "candidate",
            "p_noninferior",
            "p_superior",
            "p_regression",
            "extra_failures_per_month",
        }
        assert set(block["delta"]) == {"mean", "lower", "upper"}
        assert block["delta"]["lower"] <= block["delta"]["mean"] <= block["delta"]["upper"]
    assert set(dim["segments"]) == {"r0", "r1"}
    assert set(out["diagnostics"]) >= {"rhat_max", "ess_min", "judge"}
    assert set(out["diagnostics"]["judge"]["correctness"]["cand"]) >= {"sensitivity", "specificity"}
    assert out["verdict"] == "GO"
    assert "cand: GO" in out["candidates"]["cand"]["summary"]


def test_clear_regression_is_no_go_and_costs_failures():
    sc = Scenario("worse", [0.85, 0.85], [0.65, 0.70], items_per_segment=200, labels_per_segment=40)
    a = assess(spec_from_dict(SPEC), _records(scenario_records(sc, 2)))
    o = a.to_json()["candidates"]["cand"]["dimensions"]["correctness"]["overall"]
    assert a.verdict == "NO-GO" and a.exit_code == 1
    assert o["p_regression"] > 0.95
    assert o["extra_failures_per_month"]["mean"] > 100_000  # ~17 points of 1M interactions


def test_too_few_labels_asks_for_labels_on_unlabelled_items():
    sc = Scenario("equal", [0.8, 0.8], [0.8, 0.8], items_per_segment=150, labels_per_segment=5)
    rows = scenario_records(sc, 3)
    a = assess(spec_from_dict(SPEC), _records(rows))
    assert a.verdict == "NEED-LABELS" and a.exit_code == 3
    assert a.labels_needed["cand"]["correctness"] > 0
    labelled = {(r["item"], r["model"]) for r in rows if "labels" in r}
    picks = [(x["item"], x["model"]) for x in a.next_labels]
    assert picks and not set(picks) & labelled
    assert len(set(picks)) == len(picks)
    assert all(x["value"] >= 0 for x in a.next_labels)


def test_lenient_judge_on_candidate_is_not_go():
    """The judge passes the candidate's bad answers; labels on the candidate reveal it."""
    sc = Scenario(
        "worse, lenient",
        [0.85],
        [0.75],
        items_per_segment=800,
        labels_per_segment=120,
        sensitivity=(0.9, 0.97),
        specificity=(0.9, 0.5),
    )
    rows = scenario_records(sc, 4)
    judge_alone = {
        m: np.mean([r["signals"]["correctness"] for r in rows if r["model"] == m]) for m in ("legacy", "cand")
    }
    assert judge_alone["cand"] >= judge_alone["legacy"] - 0.02  # the judge alone sees no regression
    spec = spec_from_dict({**SPEC, "segment_by": []})
    a = assess(spec, _records(rows))
    assert a.verdict != "GO"
    judge = a.to_json()["diagnostics"]["judge"]["correctness"]
    assert judge["cand"]["specificity"] < judge["legacy"]["specificity"] - 0.15


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda rows: [r for r in rows if r["model"] != "cand"], "no records for the candidate 'cand'"),
        (lambda rows: rows + [rows[0]], "has two records for model"),
        (lambda rows: [{**r, "segment": {}} if i == 0 else r for i, r in enumerate(rows)], "no field 'region'"),
    ],
)
def test_data_errors_are_clear(mutate, needle):
    sc = Scenario("x", [0.8], [0.8], items_per_segment=20, labels_per_segment=5)
    with pytest.raises(DataError, match=needle):
        assess(spec_from_dict(SPEC), _records(mutate(scenario_records(sc, 5))))


def test_traffic_shares_must_match_segments():
    sc = Scenario("x", [0.8, 0.8], [0.8, 0.8], items_per_segment=20, labels_per_segment=5)
    spec = spec_from_dict({**SPEC, "traffic": {"shares": {"r0": 0.5, "mars": 0.5}}})
    with pytest.raises(DataError, match="no share for segment 'r1'"):
        assess(spec, _records(scenario_records(sc, 6)))


def _full_human_delta(truth: list[Record], inc: str, cand: str) -> float:
    by = {(r.item, r.model): r.labels["refusal"][0] for r in truth}
    items = sorted({r.item for r in truth})
    return float(np.mean([by[(i, cand)] - by[(i, inc)] for i in items]))


@pytest.mark.parametrize("n_labels", [60, 120, 240])
def test_xstest_masked_labels_cover_the_full_human_delta(n_labels):
    """Real data: the GPT-4 judge is much less accurate on some models than on others.

    With human labels kept on a random n_labels prompts, the 95% interval of
    the delta (llama2orig -> each other model) covers what all 450 human
    labels say; the judge alone misses some of these by far.
    """
    truth = read_records(bundled_records_path())
    items = sorted({r.item for r in truth})
    keep = set(random.Random(n_labels).sample(items, n_labels))
    masked = [
        Record(**{**{f: getattr(r, f) for f in r.__slots__}, "labels": r.labels if r.item in keep else {}})
        for r in truth
    ]
    cands = ["gpt4", "llama2new", "mistralinstruct", "mistralguard"]
    spec = spec_from_dict({"incumbent": "llama2orig", "candidates": cands, "dimensions": {"refusal": {"margin": 0.02}}})
    out = assess(spec, masked).to_json()
    for cand in cands:
        d = out["candidates"][cand]["dimensions"]["refusal"]["overall"]["delta"]
        full = _full_human_delta(truth, "llama2orig", cand)
        assert d["lower"] <= full <= d["upper"], (cand, full, d)
    assert out["diagnostics"]["rhat_max"] < 1.05
