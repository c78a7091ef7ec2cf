"""``prompts adapt`` against the fake OpenAI server: a format drift (JSON in code fences) found and fixed.

The candidate wraps its JSON in markdown fences unless the system prompt
forbids them; the proposer (another fake model) answers each pattern in its
own way: an unreadable ramble (counted), a reordering that fixes nothing, and
an explicit output-format constraint that the candidate obeys. A human
reviewer (the ``labeller``) accepts only raw JSON.

The ``rules`` proposer (fixed rewrites, no model call): each rewrite, or why
it has none; and the search with it against a candidate that copies the
fences of the prompt's example answers.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from changeover.cli import run
from changeover.config import spec_from_dict
from changeover.evaluate import adapt_rules
from changeover.evaluate.adapt import adapt
from changeover.prompts import Registry, read_interactions
from changeover.prompts.patterns import PATTERNS, Failure, parse_proposal
from changeover.prompts.registry import PromptVariant
from changeover.records import Record
from changeover.stats.decision import PASSING
from changeover.store import open_store

PROMPT = """\
id: extract-order
description: Read an order out of a customer's message
variants:
  default:
    version: 2
    system: Extract the order from the customer's message as JSON with keys order_id and item.
    template: "Message: {text}"
"""
FIX = "Reply with raw JSON only, no code fences."
FIT = {"draws": 100, "warmup": 100, "chains": 4}
ITEMS = 12


def order_json(body: dict[str, Any]) -> str:
    user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    number, item = re.search(r"Order (\d+): (.+)$", user).groups()
    return json.dumps({"order_id": int(number), "item": item})


def system_of(body: dict[str, Any]) -> str:
    return next((m["content"] for m in body["messages"] if m["role"] == "system"), "")


def drifting_candidate(body: dict[str, Any]) -> str:
    """Fenced JSON (format drift) unless the system prompt forbids code fences."""
    if "no code fences" in system_of(body).lower():
        return order_json(body)
    return f"```json\n{order_json(body)}\n```"


def proposer(body: dict[str, Any]) -> str:
    user = body["messages"][-1]["content"]
    parent = re.search(r"SYSTEM PROMPT:\n(.*?)\n\n", user, re.S).group(1)
    if PATTERNS["output_format"].title in user:
        return "Here is the revision:\n```json\n" + json.dumps({"system": f"{parent} {FIX}"}) + "\n```"
    if PATTERNS["instruction_order"].title in user:
        return json.dumps({"system": "Keys: order_id, then item. " + parent})
    return "I think the prompt should be clearer about what it wants."  # no proposal in it


def human(records: list[Record]) -> None:
    """The reviewer: a response is acceptable when it is raw JSON."""
    for rec in records:
        try:
            json.loads(rec.response or "")
            rec.labels["format"] = [1]
        except json.JSONDecodeError:
            rec.labels["format"] = [0]


def setup(tmp_path: Path, fake) -> tuple[Any, Path, Path]:
    fake.set("old-model", reply=order_json)
    fake.set("new-model", reply=drifting_candidate)
    fake.set("writer-model", reply=proposer)
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "extract.yaml").write_text(PROMPT)
    common = {"base_url": fake.base_url, "backoff_s": 0.01, "max_retries": 1, "concurrency": 8}
    raw = {
        "incumbent": "old-model",
        "candidates": ["new-model"],
        "segment_by": ["region"],
        "dimensions": {"format": {"margin": 0.15}},
        "models": {m: dict(common) for m in ("old-model", "new-model", "writer-model")},
        "pricing": {
            "new-model": {"input_per_1k": 0.1, "output_per_1k": 0.2},
            "writer-model": {"input_per_1k": 1.0, "output_per_1k": 2.0},
        },
        "judges": {"format": {"kind": "fenced_json"}},
        "prompts": {"registry": "prompts"},
    }
    spec_path = tmp_path / "migration.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    rows = [
        {
            "item": f"o{i:02d}",
            "segment": {"region": "emea" if i % 2 else "apac"},
            "prompt_id": "extract-order",
            "variables": {"text": f"Order {100 + i}: {i + 1} lamps"},
            "params": {"max_tokens": 64},
        }
        for i in range(ITEMS)
    ]
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return spec_from_dict(raw, spec_path), spec_path, traffic


def test_adapt_finds_the_output_format_fix_registers_it_and_the_ab_shows_the_prompt_effect(tmp_path, fake):
    spec, _, traffic = setup(tmp_path, fake)
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        result = adapt(
            spec,
            read_interactions(traffic),
            "new-model",
            store=store,
            proposer="writer-model",
            budget_calls=80,
            patterns=["instruction_specificity", "instruction_order", "output_format"],
            labeller=human,
            fit=FIT,
        )
    statuses = [(t.pattern, t.status) for t in result.tried]
    assert statuses == [
        ("-", "baseline"),
        ("instruction_specificity", "unparsed"),
        ("instruction_order", "evaluated"),
        ("output_format", "evaluated"),
    ]
    baseline, ramble, reorder, fix = result.tried
    assert baseline.calls == {"format": "regression"} and reorder.calls == {"format": "regression"}
    assert "clearer" in ramble.note  # the unreadable answer is shown, not dropped
    assert result.proposals == {"asked": 3, "unparsed": 1, "parsed": 2}
    assert result.winner is fix and fix.calls["format"] in PASSING and result.stop.startswith("non-inferior")
    assert FIX in fix.variant.system and fix.variant.template == "Message: {text}"

    # every call went through the budget, nothing was called twice (the incumbent: once per item)
    assert result.budget.made == sum(fake.calls.values()) <= 80 and not fake.duplicates()
    assert fake.calls["old-model"] == 2 * ITEMS  # its own prompt, and the adapted prompt in the A/B
    assert fake.calls["writer-model"] == 3 and result.calls["writer-model"]["made"] == 3
    assert result.budget.spent_usd == pytest.approx(sum(v["cost_usd"] for v in result.calls.values()))

    # registered as the candidate's own variant, with lineage and evidence
    reg = Registry.load(tmp_path / "prompts")
    registered = reg.prompts["extract-order"].variants["new-model"]
    assert registered.system == fix.variant.system and registered.version == 1
    assert result.registered["variant"] == "new-model"
    (entry,) = [
        json.loads(line) for line in (tmp_path / "prompts/lineage/extract-order.jsonl").read_text().splitlines()
    ]
    assert entry["winner"] is True and entry["pattern"] == "output_format" and entry["proposer"] == "writer-model"
    assert entry["parent"] == "extract-order@default:v2" and entry["arm"] == fix.arm
    assert entry["evidence"]["calls"] == fix.calls and entry["evidence"]["sample"] == ITEMS

    # the 2x2: the model alone regresses; the adapted prompt fixes it on the new model
    ab = result.ab
    assert ab is not None
    assert ab.arms["new-model+prompt:old-model"]["format"]["call"] == "regression"
    assert ab.arms[fix.arm]["format"]["call"] in PASSING
    assert ab.effects["format"]["prompt_on_new_model"] > 0.5
    assert abs(ab.effects["format"]["prompt_on_old_model"]) < 0.2


def test_a_budget_of_too_few_calls_stops_cleanly_and_registers_nothing(tmp_path, fake, capsys):
    _, spec_path, traffic = setup(tmp_path, fake)
    before = (tmp_path / "prompts/extract.yaml").read_text()
    db = f"sqlite:///{tmp_path / 'c.db'}"
    code = run([*adapt_cli(spec_path, traffic, db, "--budget-calls", "30"), "--json", str(tmp_path / "adapt.json")])
    out = capsys.readouterr().out
    assert code == 1 and "budget spent" in out and "baseline" in out
    data = json.loads((tmp_path / "adapt.json").read_text())
    assert data["winner"] is None and data["registered"] is None and data["budget"]["calls_made"] <= 30
    assert data["budget"]["calls_made"] == sum(fake.calls.values()) == 2 * ITEMS  # the baseline only
    assert fake.calls["writer-model"] == 0
    assert (tmp_path / "prompts/extract.yaml").read_text() == before
    assert not (tmp_path / "prompts/lineage").exists()


@pytest.mark.parametrize(
    "usd, stop",
    [
        (0.5, "budget spent before the next proposal"),  # the baseline fits, the proposer's call would not
        (0.002, "budget spent before the baseline was evaluated"),  # refused mid-run, before each call
    ],
)
def test_a_usd_budget_is_never_overspent(tmp_path, fake, usd, stop):
    spec, _, traffic = setup(tmp_path, fake)
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        result = adapt(
            spec,
            read_interactions(traffic),
            "new-model",
            store=store,
            proposer="writer-model",
            budget_usd=usd,
            labeller=human,
            fit=FIT,
        )
    assert result.winner is None and result.registered is None and result.stop == stop
    assert result.budget.spent_usd <= usd and result.budget.refused >= 1
    assert fake.calls["writer-model"] == 0 and result.budget.made == sum(fake.calls.values())
    assert not (tmp_path / "prompts/lineage").exists()


@pytest.mark.parametrize(
    "answer, system",
    [
        ('{"system": "New."}', "New."),
        ('Sure!\n```json\n{"system_prompt": "New."}\n```', "New."),
        ("<system>New.</system>", "New."),
        ("SYSTEM: New.\nTEMPLATE: Message: {text}", "New."),
        ("I would make it clearer.", None),
        ('{"system": "Old."}', None),  # unchanged: not a proposal
        ('{"system": "<the complete new system prompt>"}', None),  # the request's placeholder echoed back
        ("", None),
    ],
)
def test_proposals_are_read_from_json_tags_or_sections_and_otherwise_counted_unparsed(answer, system):
    parent = PromptVariant(version=3, system="Old.", template="Message: {text}")
    got = parse_proposal(answer, parent)
    assert (got.system if got else None) == system
    if got is not None:
        assert got.template == "Message: {text}"


def adapt_cli(spec_path: Path, traffic: Path, db: str, *extra: str) -> list[str]:
    return [
        "prompts",
        "adapt",
        "--spec",
        str(spec_path),
        "--candidate",
        "new-model",
        "--prompts",
        str(traffic),
        "--proposer",
        "writer-model",
        "--db",
        db,
        "--draws",
        "100",
        "--chains",
        "4",
        *extra,
    ]


def test_cli_labels_from_the_store_decide_a_rerun_that_calls_nothing_again(tmp_path, fake, capsys):
    """Without labels the variant is inconclusive; a human labels the stored responses; the rerun decides."""
    from changeover.store.responses import load_records

    _, spec_path, traffic = setup(tmp_path, fake)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    args = adapt_cli(spec_path, traffic, db, "--pattern", "output_format", "--budget-calls", "80")
    assert run([*args, "--json", str(tmp_path / "first.json")]) == 1
    first = json.loads((tmp_path / "first.json").read_text())
    assert [r["calls"].get("format") for r in first["tried"]] == ["inconclusive", "inconclusive"]
    assert first["registered"]["variant"] == "new-model+adapted"  # the best so far, not the candidate's own
    calls_before = sum(fake.calls.values())

    with open_store(db) as store:  # the reviewer labels every stored response: raw JSON or not
        stored = load_records(store)
    lines = ["item,model,dimension,value"]
    for rec in stored:
        human([rec])
        lines.append(f"{rec.item},{rec.model},format,{rec.labels['format'][0]}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    assert run(["label", "import", str(tmp_path / "labels.csv"), "--db", db]) == 0
    capsys.readouterr()

    assert run([*args, "--json", str(tmp_path / "second.json")]) == 0
    out = capsys.readouterr().out
    second = json.loads((tmp_path / "second.json").read_text())
    assert sum(fake.calls.values()) == calls_before and second["budget"]["calls_made"] == 0  # all cached
    assert second["winner"] == first["tried"][1]["arm"] and second["registered"]["variant"] == "new-model"
    assert [r["calls"]["format"] for r in second["tried"]][0] == "regression"
    assert "non-inferior on every required dimension" in out and "prompt A/B of" in out
    assert "prompt effect on the new model +" in out


def test_user_errors_name_the_option_and_call_nothing(tmp_path, fake, capsys):
    _, spec_path, traffic = setup(tmp_path, fake)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    base = adapt_cli(spec_path, traffic, db)
    assert run([*base, "--proposer", "nobody"]) == 2
    assert "--proposer 'nobody' is not configured under models:" in capsys.readouterr().err
    assert run([*base, "--prompt-id", "nope"]) == 2
    assert "--prompt-id 'nope': no such prompt in the registry" in capsys.readouterr().err
    logged = tmp_path / "logged.jsonl"
    logged.write_text(json.dumps({"item": "a", "segment": {"region": "emea"}, "prompt": "Order 1: a pen"}) + "\n")
    assert run([*adapt_cli(spec_path, logged, db)]) == 2
    assert "traffic has no line with a 'prompt_id'" in capsys.readouterr().err
    assert sum(fake.calls.values()) == 0


# ---------------------------------------------------------------- the rules proposer (fixed rewrites, no call)

FENCED = 'Answer:\n```json\n{"order_id": 7, "item": "1 table"}\n```'
FENCE_FAILURE = Failure(
    "o01",
    "format",
    "Message: Order 1: a pen",
    '```json\n{"order_id": 1}\n```',
    '{"order_id": 1}',
    "JSON wrapped in a markdown code fence",
)


def rules_parent(system: str | None = f"Extract the order as JSON. Be brief.\n\nExample:\n{FENCED}") -> PromptVariant:
    return PromptVariant(version=4, system=system, template="Message: {text}")


@pytest.mark.parametrize(
    "pattern, parent, failures, system",
    [
        (
            "few_shot",
            rules_parent(),
            [FENCE_FAILURE],
            'Extract the order as JSON. Be brief.\n\nExample:\nAnswer:\n{"order_id": 7, "item": "1 table"}',
        ),
        ("few_shot", rules_parent("Reply as JSON.\n\n```python\nprint(1)\n```"), [FENCE_FAILURE], None),  # not JSON
        ("few_shot", rules_parent("Reply as JSON."), [FENCE_FAILURE], None),
        (
            "output_format",
            rules_parent("Reply as JSON."),
            [FENCE_FAILURE],
            "Reply as JSON.\n\nReply with the JSON object only: start your reply with { and end it with }, "
            "with nothing before or after it.",
        ),
        (
            "output_format",
            rules_parent("Reply as JSON."),
            [replace(FENCE_FAILURE, incumbent_response="[1, 2]")],
            "Reply as JSON.\n\nReply with the JSON array only: start your reply with [ and end it with ], "
            "with nothing before or after it.",
        ),
        ("output_format", rules_parent("Reply."), [replace(FENCE_FAILURE, incumbent_response="Sure: 1")], None),
        (
            "instruction_specificity",
            rules_parent("Reply as JSON."),
            [FENCE_FAILURE, FENCE_FAILURE, replace(FENCE_FAILURE, why="error: HTTP 500")],
            "Reply as JSON.\n\nReplies rejected before were: JSON wrapped in a markdown code fence. "
            "Your reply must avoid this.",
        ),
        (
            "instruction_specificity",
            rules_parent("Reply as JSON."),
            [replace(FENCE_FAILURE, why="error: timeout")],
            None,
        ),
        (
            "instruction_order",
            rules_parent("Be brief. Extract the order as JSON.\n\nMore."),
            [],
            "Extract the order as JSON.\n\nBe brief.\n\nMore.\n\nExtract the order as JSON.",
        ),
        ("instruction_order", rules_parent(None), [], None),
    ],
)
def test_the_rules_rewrite_one_pattern_or_say_why_not(pattern, parent, failures, system):
    variant, note = adapt_rules.propose(parent, pattern, failures)
    assert note.startswith("rules: ") and len(note) > len("rules: ")
    assert (variant.system if variant else None) == system
    if variant is not None:
        assert variant.template == parent.template and variant.version == 1


@pytest.mark.parametrize("pattern", ["instruction_specificity", "instruction_order", "output_format", "few_shot"])
def test_a_rule_applied_twice_changes_nothing_the_second_time(pattern):
    """The best arm may be the parent again: a rewrite of its own output proposes nothing new."""
    parent = rules_parent() if pattern == "few_shot" else rules_parent("Be brief. Extract the order as JSON.")
    once, _ = adapt_rules.propose(parent, pattern, [FENCE_FAILURE])
    assert once is not None
    twice, note = adapt_rules.propose(once, pattern, [FENCE_FAILURE])
    assert twice is None and note.startswith("rules: ")


def imitating_candidate(body: dict[str, Any]) -> str:
    """A small model's habit: its answer looks like the prompt's examples (fenced when they are fenced)."""
    if "```" in system_of(body):
        return f"```json\n{order_json(body)}\n```"
    return order_json(body)


def test_the_rules_proposer_unwraps_fenced_examples_without_calling_a_proposer(tmp_path, fake):
    spec, _, traffic = setup(tmp_path, fake)
    fake.set("new-model", reply=imitating_candidate)
    prompt = yaml.safe_load(PROMPT)
    prompt["variants"]["default"]["system"] += f"\n\nExample:\nMessage: Order 7: 1 table\n{FENCED}"
    (tmp_path / "prompts/extract.yaml").write_text(yaml.safe_dump(prompt))
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        result = adapt(
            spec,
            read_interactions(traffic),
            "new-model",
            store=store,
            proposer="rules",
            budget_calls=80,
            labeller=human,
            fit=FIT,
        )
    assert [(t.pattern, t.status) for t in result.tried] == [
        ("-", "baseline"),
        ("output_format", "evaluated"),
        ("instruction_specificity", "evaluated"),
        ("few_shot", "evaluated"),
    ]
    assert [t.calls["format"] for t in result.tried[:3]] == ["regression"] * 3
    fix = result.tried[3]
    assert result.winner is fix and fix.calls["format"] in PASSING and fix.note.startswith("rules: unwrapped 1")
    assert fake.calls["writer-model"] == 0 and "rules" not in result.calls
    assert result.proposals == {"asked": 3, "parsed": 3}
    # baseline and 3 variants, then the A/B's one new arm (the old model on the adapted prompt)
    assert result.budget.made == sum(fake.calls.values()) == 2 * ITEMS + 3 * ITEMS + ITEMS
    (entry,) = [json.loads(line) for line in (tmp_path / "prompts/lineage/extract-order.jsonl").open()]
    assert entry["proposer"] == "rules" and entry["pattern"] == "few_shot" and entry["winner"] is True
    assert "```" not in Registry.load(tmp_path / "prompts").prompts["extract-order"].variants["new-model"].system
