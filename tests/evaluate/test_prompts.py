"""Prompts: logged traffic validation, the registry (variants, versions, errors by line), audit, arms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from changeover.cli import run
from changeover.config import spec_from_dict
from changeover.errors import RecordsError, SpecError
from changeover.prompts import Registry, audit_registry, plan_arms, read_interactions, spec_for_arms

SUPPORT = """\
id: support-answer
description: Answer a billing question
variants:
  default:
    version: 3
    system: You are ACME support. Answer in two sentences.
    template: "Customer question: {question}"
  new-model:
    version: 1
    system: You are ACME's support agent. Reply in at most two sentences, plain text.
    params: {temperature: 0.2}
"""
EXTRACT = """\
id: extract-order
variants:
  default:
    version: 1
    system: |
      Extract the order. Respond only with JSON matching this schema:
      {"type": "object", "required": ["order_id"]}
"""


def write_registry(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "support.yaml").write_text(SUPPORT)
    (folder / "extract.yaml").write_text(EXTRACT)
    return folder


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_traffic_rows_prompt_messages_and_variables(tmp_path):
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"item": "a", "prompt": "hello", "segment": {"region": "emea"}},
            {
                "id": 7,
                "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
                "params": {"max_tokens": 5},
                "expect_refusal": True,
            },
            {"item": "c", "prompt_id": "support-answer", "variables": {"question": "refund?"}},
        ],
    )
    a, b, c = read_interactions(path)
    assert a.messages == [{"role": "user", "content": "hello"}] and a.segment == {"region": "emea"}
    assert b.item == "7" and b.prompt_text == "q" and b.expect_refusal is True and b.params == {"max_tokens": 5}
    assert c.messages == [] and c.source.endswith("t.jsonl:3")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"item": "x", "messages": [{"role": "robot", "content": "hi"}]}', r"t.jsonl:2: field 'messages.0.role'"),
        ('{"item": "x"}', r"t.jsonl:2: .*needs 'messages', 'prompt'"),
        ('{"item": "x", "prompt": "p"', r"t.jsonl:2: not valid JSON"),
        ('{"item": "a", "prompt": "dup"}', r"t.jsonl:2: field 'item': 'a' is already used at .*t.jsonl:1"),
        ('{"prompt": "no id"}', r"t.jsonl:2: field 'item' is required"),
    ],
)
def test_malformed_prompts_file_names_the_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "t.jsonl", [{"item": "a", "prompt": "ok"}, line])
    with pytest.raises(RecordsError, match=message):
        read_interactions(path)


def test_registry_renders_each_models_variant(tmp_path):
    reg = Registry.load(write_registry(tmp_path / "prompts"))
    traffic = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {
                "item": "c",
                "prompt_id": "support-answer",
                "variables": {"question": "refund?"},
                "messages": [{"role": "system", "content": "old"}, {"role": "user", "content": "refund?"}],
                "params": {"max_tokens": 50},
            }
        ],
    )
    (inter,) = read_interactions(traffic)
    old = reg.render(inter, "old-model")
    new = reg.render(inter, "new-model")
    assert old.version == "support-answer@default:v3" and new.version == "support-answer@new-model:v1"
    assert old.messages == [
        {"role": "system", "content": "You are ACME support. Answer in two sentences."},
        {"role": "user", "content": "Customer question: refund?"},
    ]
    assert new.messages[0]["content"].startswith("You are ACME's support agent")
    assert new.params == {"max_tokens": 50, "temperature": 0.2} and old.params == {"max_tokens": 50}


def test_template_variable_missing_names_the_traffic_line(tmp_path):
    reg = Registry.load(write_registry(tmp_path / "prompts"))
    traffic = write_jsonl(
        tmp_path / "t.jsonl", [{"item": "c", "prompt_id": "support-answer", "variables": {"topic": "x"}}]
    )
    (inter,) = read_interactions(traffic)
    with pytest.raises(RecordsError, match=r"t.jsonl:1: field 'variables' has no 'question'"):
        reg.render(inter, "m")


@pytest.mark.parametrize("template", ['Reply as {"answer": ...} to {q}', "Close } then answer {q}", "{0} {q}"])
def test_template_with_literal_braces_is_a_spec_error_naming_the_field(tmp_path, template):
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "json.yaml").write_text(f"id: j\nvariants:\n  default:\n    template: '{template}'\n")
    traffic = write_jsonl(tmp_path / "t.jsonl", [{"item": "c", "prompt_id": "j", "variables": {"q": "x"}}])
    (inter,) = read_interactions(traffic)
    with pytest.raises(SpecError, match=r"json.yaml: field 'variants.default.template' cannot be filled in"):
        Registry.load(folder).render(inter, "m")


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "id: p\nvariants:\n  default:\n    version: 1\n    sytem: typo\n",
            r"bad.yaml:5: field 'variants.default.sytem'",
        ),
        ("id: p\nvariants:\n  default: {version: 1\n", r"bad.yaml:\d+: not valid YAML"),
        ("id: p\ndescription: x\n", r"bad.yaml:1: field 'variants' is required"),
        ("- just\n- a list\n", r"bad.yaml:1: a prompt file is a mapping"),
    ],
)
def test_malformed_registry_file_names_file_line_and_field(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(SpecError, match=message):
        Registry.load(tmp_path)


def test_audit_flags_heavy_format_prompts_first(tmp_path):
    rows = audit_registry(Registry.load(write_registry(tmp_path / "prompts")))
    assert [(r.prompt, r.variant) for r in rows] == [
        ("extract-order", "default"),
        ("support-answer", "default"),
        ("support-answer", "new-model"),
    ]
    assert {"JSON output", "JSON schema", "extraction template", "strict format"} <= set(rows[0].heavy)
    assert rows[1].heavy == [] and rows[1].tokens > 10 and rows[1].tokens != rows[2].tokens


def test_prompts_audit_cli(tmp_path, capsys):
    write_registry(tmp_path / "prompts")
    spec = tmp_path / "migration.yaml"
    spec.write_text("incumbent: a\ncandidates: [b]\ndimensions: {correctness: {}}\nprompts: {registry: prompts}\n")
    assert run(["prompts", "audit", "--spec", str(spec), "--json", str(tmp_path / "audit.json")]) == 0
    out = capsys.readouterr().out
    assert "extract-order" in out and "1 of 2 prompts have heavy format requirements" in out
    data = json.loads((tmp_path / "audit.json").read_text())
    assert data["check_first"] == ["extract-order"] and len(data["prompts"]) == 3
    (tmp_path / "prompts" / "broken.yaml").write_text("id: x\nvariants: {default: {versoin: 2}}\n")
    assert run(["prompts", "audit", "--registry", str(tmp_path / "prompts")]) == 2
    assert "broken.yaml:2: field 'variants.default.versoin'" in capsys.readouterr().err


def test_prompt_ab_arms_and_the_spec_assess_reads():
    spec = spec_from_dict({"incumbent": "old", "candidates": ["new"], "dimensions": {"correctness": {}}})
    assert [a.name for a in plan_arms(spec)] == ["old", "new"]
    arms = plan_arms(spec, prompt_ab=True)
    assert [(a.name, a.model, a.prompt_for) for a in arms] == [
        ("old", "old", "old"),
        ("old+prompt:new", "old", "new"),
        ("new+prompt:old", "new", "old"),
        ("new", "new", "new"),
    ]
    assert spec_for_arms(spec, arms).candidates == ["old+prompt:new", "new+prompt:old", "new"]
