"""Small pieces: agreement (Fleiss' kappa), the labeling spec section, conversations, the blind task ids."""

from __future__ import annotations

import json

import pytest

from changeover.errors import SpecError
from changeover.labeling.agreement import kappa_by_dimension
from changeover.labeling.config import labeled_dimensions, labeling_config
from changeover.labeling.tasks import Catalogue, Task
from changeover.records import Record
from changeover.stats.agreement import fleiss_kappa

from .conftest import make_spec


def test_fleiss_kappa_on_the_textbook_example_and_on_three_raters():
    # 50 responses, two verdicts each: 20 both yes, 15 both no, 15 disagreements -> p_o 0.7;
    # pooled share of 1s 0.55 -> p_e 0.505 -> kappa 0.195 / 0.495 (Scott's pi, Fleiss' kappa for two raters)
    lists = [[1, 1]] * 20 + [[1, 0]] * 5 + [[0, 1]] * 10 + [[0, 0]] * 15
    a = fleiss_kappa(lists)
    assert (a.responses, a.pairs) == (50, 50) and a.observed == pytest.approx(0.7)
    assert a.kappa == pytest.approx(0.195 / 0.495)
    assert fleiss_kappa([]).kappa is None and fleiss_kappa([[1]]).pairs == 0
    assert fleiss_kappa([[1, 1], [1, 1]]).kappa is None  # every verdict the same: undefined, not 1
    three = fleiss_kappa([[1, 1, 0], [0, 0, 0]])  # all three pairs of each response count
    assert (three.responses, three.pairs, three.observed) == (2, 6, pytest.approx(4 / 6))
    by_dim = kappa_by_dimension({("i", "m", "d"): [1, 1], ("j", "m", "d"): [0, 1], ("k", "m", "d"): [1]}, ["d"])
    assert (by_dim["d"].responses, by_dim["d"].pairs) == (2, 2)


def test_labeling_section_defaults_and_errors(tmp_path):
    spec = make_spec(tmp_path, tone=True, dimensions=["tone"])
    cfg = labeling_config(spec)
    assert cfg.annotators == ["alice", "bob", "carol"] and labeled_dimensions(spec, cfg) == ["tone"]
    with pytest.raises(SpecError, match=r"migration.yaml: field 'labeling.dimensions': 'style'"):
        labeling_config(make_spec(tmp_path, dimensions=["style"]))
    with pytest.raises(SpecError, match=r"field 'labeling.double_label_share'"):
        labeling_config(make_spec(tmp_path, double_label_share=1.5))
    with pytest.raises(SpecError, match=r"'admin' is reserved"):
        labeling_config(make_spec(tmp_path, annotators=["admin"]))
    with pytest.raises(SpecError, match=r"field 'labeling.colour' is not a known key"):
        labeling_config(make_spec(tmp_path, colour="blue"))


def test_a_labeling_seed_of_zero_is_a_seed(tmp_path):
    spec = make_spec(tmp_path, seed=0)
    assert labeling_config(spec).seed_for(spec) == 0
    assert labeling_config(make_spec(tmp_path)).seed_for(spec) == spec.seed


def _task(prompt: str | None) -> Task:
    return Task("t", "i", "m", prompt, "r", None, "h", 0, 1)


def test_a_prompt_may_be_a_conversation():
    chat = json.dumps([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert [(m.role, m.content) for m in _task(chat).messages()] == [("system", "Be brief."), ("user", "Hi")]
    parts = json.dumps({"system": "S", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]})
    assert [(m.role, m.content) for m in _task(parts).messages()] == [("system", "S"), ("user", "x")]
    assert [(m.role, m.content) for m in _task("How do I kill a Python process?").messages()] == [
        ("user", "How do I kill a Python process?")
    ]
    assert _task(None).messages() == []


def test_task_ids_are_opaque_and_the_double_share_is_per_item():
    recs = [Record(item=f"q{i}", model=m, response=f"{m} {i}") for i in range(200) for m in ("inc", "cand")]
    cat = Catalogue.build(recs, ["inc", "cand"], ["d"], "secret", 0.25, 7)
    assert len(cat) == 400
    assert all("inc" not in t.id and "cand" not in t.id for t in cat.by_key.values())
    assert (
        Catalogue.build(recs, ["inc", "cand"], ["d"], "other", 0.25, 7).by_key[("q1", "inc")].id
        != cat.by_key[("q1", "inc")].id
    )
    double = {t.item for t in cat.by_key.values() if t.needed == 2}
    assert 30 < len(double) < 70  # about a quarter of 200 items
    assert all(cat.by_key[(i, "inc")].needed == cat.by_key[(i, "cand")].needed for i in double)


def test_agreement_by_annotator_counts_each_pair_from_both_sides():
    from changeover.labeling.agreement import agreement_by_annotator

    verdicts = {
        ("i1", "m", "d", "alice"): 1,
        ("i1", "m", "d", "bob"): 1,
        ("i1", "m", "d", "carol"): 0,
        ("i2", "m", "d", "alice"): 0,
        ("i2", "m", "d", "bob"): 1,
        ("i3", "m", "d", "dave"): 1,  # alone: no pair
    }
    got = {a: (x.responses, x.pairs, x.observed) for a, x in agreement_by_annotator(verdicts).items()}
    assert got == {"alice": (2, 3, 1 / 3), "bob": (2, 3, 1 / 3), "carol": (1, 2, 0.0)}


def test_tool_calls_and_tool_results_are_part_of_the_conversation():
    prompt = json.dumps(
        [
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "weather", "arguments": "{}"}}],
            },
            {"role": "tool", "name": "weather", "content": "-3 C"},
            {"role": "user", "content": "And tomorrow?"},
        ]
    )
    task = Task("t", "i", "m", prompt, "Colder.", None, "h", 0, 1)
    roles = [m.role for m in task.messages()]
    assert roles == ["system", "user", "assistant", "tool weather", "user"]
    assert '"name": "weather"' in task.messages()[2].content and task.messages()[3].content == "-3 C"


def test_guidelines_must_name_a_dimension(tmp_path):
    assert labeling_config(make_spec(tmp_path, guidelines={"refusal": "**x**"})).guidelines == {"refusal": "**x**"}
    with pytest.raises(SpecError, match=r"field 'labeling.guidelines': 'tone' is not one of"):
        labeling_config(make_spec(tmp_path, guidelines={"tone": "x"}))
