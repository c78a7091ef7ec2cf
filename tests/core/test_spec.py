"""The migration spec: typed core keys, feature sections validated with field paths."""

import pytest
from pydantic import BaseModel, ConfigDict

from changeover.config import load_spec, spec_from_dict
from changeover.errors import SpecError

GOOD = """
incumbent: legacy-model
candidates: [cand-a, cand-b]
segment_by: [region]
traffic: {monthly_interactions: 5300000, shares: {emea: 0.3, na: 0.5, apac: 0.2}}
confidence: 0.95
dimensions:
  correctness: {signal: correctness, margin: 0.02}
  refusal:     {margin: 0.005}
  style:       {signal: style, margin: 0.03, levels: 5}
rollout: {stages: [{weight: 5}, {weight: "lots"}]}
"""


def test_good_spec(tmp_path):
    path = tmp_path / "migration.yaml"
    path.write_text(GOOD)
    spec = load_spec(path)
    assert spec.models == ["legacy-model", "cand-a", "cand-b"]
    assert spec.dimensions["refusal"].signal == "refusal"  # defaults to the dimension's name
    assert spec.dimensions["style"].levels == 5
    assert spec.traffic.shares["na"] == 0.5


def test_feature_section_errors_name_the_field(tmp_path):
    path = tmp_path / "migration.yaml"
    path.write_text(GOOD)
    spec = load_spec(path)

    class Stage(BaseModel):
        model_config = ConfigDict(extra="forbid")
        weight: int

    class Rollout(BaseModel):
        model_config = ConfigDict(extra="forbid")
        stages: list[Stage]

    with pytest.raises(SpecError, match=r"migration.yaml: field 'rollout.stages.1.weight'"):
        spec.section("rollout", Rollout)
    assert spec.section("shadow", Rollout) is None


@pytest.mark.parametrize(
    "patch, needle",
    [
        ({"candidates": []}, "candidates"),
        ({"confidence": 1.5}, "confidence"),
        ({"candidates": ["legacy-model"]}, "also listed as a candidate"),
        (
            {"dimensions": {"correctness": {"margin": 0.02, "margn": 1}}},
            "dimensions.correctness.margn' is not a known key",
        ),
        ({"traffic": {"shares": {"emea": -1}}}, "traffic.shares"),
    ],
)
def test_bad_spec_values(patch, needle):
    raw = {"incumbent": "legacy-model", "candidates": ["cand-a"], "dimensions": {"correctness": {}}}
    raw.update(patch)
    with pytest.raises(SpecError, match=needle):
        spec_from_dict(raw, "m.yaml")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("incumbent: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad.yaml:\d+: not valid YAML"):
        load_spec(bad)
    bad.write_text("- a list\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(bad)
