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

    with pytest.raises(SpecError, match=r"migration.yaml:11: field 'rollout.stages.1.weight'"):
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


ROLLOUT_TYPO = """incumbent: legacy-model
candidates: [cand-a]
dimensions:
  correctness: {}
rolout:
  stages: [{weight: 0}, {weight: 1}]
  auto_advance: false
"""


@pytest.mark.parametrize(
    "text, needle",
    [
        (ROLLOUT_TYPO, r"m.yaml:5: 'rolout' is not a known top-level key; did you mean 'rollout'\?"),
        (ROLLOUT_TYPO.replace("rolout:", "confidance: 0.5\nrollout:"), r"m.yaml:5: 'confidance' .*'confidence'"),
        (ROLLOUT_TYPO.replace("rolout:", "segment_bye: [region]\nrollout:"), r"'segment_bye' .*'segment_by'\?"),
        (
            ROLLOUT_TYPO.replace("correctness: {}", "correctness: {margn: 0.1}"),
            r"m.yaml:4: field 'dimensions.correctness.margn' .*'margin'\?",
        ),
    ],
)
def test_unknown_keys_are_errors_with_line_and_suggestion(tmp_path, text, needle):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=needle):
        load_spec(path)


def test_feature_section_typos_name_line_and_closest_key(tmp_path):
    from changeover.rollout.config import RolloutConfig

    path = tmp_path / "m.yaml"
    path.write_text(ROLLOUT_TYPO.replace("rolout:", "rollout:").replace("auto_advance", "auto_advanse"))
    spec = load_spec(path)
    with pytest.raises(SpecError, match=r"m.yaml:7: field 'rollout.auto_advanse' .*did you mean 'auto_advance'\?"):
        spec.section("rollout", RolloutConfig)


def test_an_embeddings_only_spec_loads_when_the_command_needs_no_core(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("embeddings:\n  corpus: docs.jsonl\n")
    with pytest.raises(SpecError, match="'incumbent' is required but missing"):
        load_spec(path)
    spec = load_spec(path, core=False)
    assert not spec.has_core and spec.raw("embeddings") == {"corpus": "docs.jsonl"}
    with pytest.raises(SpecError, match="needs 'incumbent' and 'candidates' and 'dimensions'"):
        _ = spec.models
    path.write_text("embedings: {}\n")
    with pytest.raises(SpecError, match="did you mean 'embeddings'"):
        load_spec(path, core=False)


def test_a_section_a_command_needs_is_named_when_absent(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(ROLLOUT_TYPO.replace("rolout:", "rollout:"))
    spec = load_spec(path)

    class Gateway(BaseModel):
        model_config = ConfigDict(extra="forbid")
        port: int = 1

    with pytest.raises(SpecError, match=r"`changeover serve` needs the 'gateway:' section"):
        spec.require("gateway", Gateway, "changeover serve")


def test_several_signals_or_one(tmp_path):
    raw = {"incumbent": "a", "candidates": ["b"], "dimensions": {"refusal": {"signals": ["judge", "regex"]}}}
    spec = spec_from_dict(raw)
    assert spec.dimensions["refusal"].signal_names == ["judge", "regex"]
    raw["dimensions"]["refusal"]["signal"] = "judge"
    with pytest.raises(SpecError, match="either 'signal' or 'signals'"):
        spec_from_dict(raw)
