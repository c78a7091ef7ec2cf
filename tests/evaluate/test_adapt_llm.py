"""``prompts adapt`` with a real local model: SmolLM2-135M (llama.cpp) as the candidate.

The fence drift, for real: the prompt written for the old model shows its two
example answers inside markdown ```json fences (the old model answered bare
JSON anyway); SmolLM2 imitates the examples and wraps its JSON in fences.
The application sends ``stop: ["\\n\\n"]`` (one paragraph: SmolLM2 otherwise
keeps chatting after its answer), so the fence is the only format failure
left. With ``--proposer rules`` (fixed rewrites, no proposer model) adapt
must find a variant that fixes the drift within the budget, the calibrated
assessment must call it non-inferior, and it must be registered with its
lineage. Measured here (temperature 0, seed 42, 12 items, every run the
same): the baseline fenced 11 of 12 answers; the output-format constraint and
the specificity rule did not move it (12 of 12 fenced); unwrapping the
examples (``few_shot``) gave 12 of 12 bare JSON.

The second test has SmolLM2 write the proposals itself: a 135M-parameter
model rarely writes a usable prompt (unfinished JSON, text about other
things), so that test checks the accounting (every proposal a row, the budget
kept, every call counted), not that a fix is found.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from tests.evaluate.test_adapt import FIT, human

from changeover.config import spec_from_dict
from changeover.evaluate.adapt import adapt
from changeover.prompts import Registry, read_interactions
from changeover.stats.decision import PASSING
from changeover.store import open_store
from changeover.store.responses import load_records

pytestmark = [pytest.mark.llm, pytest.mark.slow]

FENCED_EXAMPLES = {
    "id": "extract-order",
    "variants": {
        "default": {
            "version": 2,
            "system": "Extract the order from the customer's message as JSON with keys order_id and item.\n\n"
            "Examples:\n"
            'Message: Order 7: 1 table\nAnswer:\n```json\n{"order_id": 7, "item": "1 table"}\n```\n\n'
            'Message: Order 9: 3 forks\nAnswer:\n```json\n{"order_id": 9, "item": "3 forks"}\n```',
            "template": "Message: {text}\nAnswer:",
        }
    },
}
GOODS = ["lamps", "desks", "chairs", "mugs", "sofas", "pens", "rugs", "cups", "plates", "towels", "clocks", "vases"]
FENCE_NOTE = "JSON wrapped in a markdown code fence"


def order_json(body: dict[str, Any]) -> str:
    """The incumbent (the old hosted model): bare JSON, whatever the examples look like."""
    user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    number, item = re.search(r"Order (\d+): (.+)$", user, re.M).groups()
    return json.dumps({"order_id": int(number), "item": item})


def test_smollm2_fence_drift_is_fixed_by_a_variant_found_within_budget(local_llm, fake, tmp_path):
    fake.set("old-model", reply=order_json)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "extract.yaml").write_text(yaml.safe_dump(FENCED_EXAMPLES, sort_keys=False))
    smol = {"base_url": local_llm.base_url, "model": local_llm.model, "concurrency": 2, "timeout_s": 120}
    raw = {
        "incumbent": "old-model",
        "candidates": ["smollm2"],
        "segment_by": ["region"],
        "dimensions": {"format": {"margin": 0.15}},
        "models": {"old-model": {"base_url": fake.base_url}, "smollm2": smol},
        "pricing": {"smollm2": {"input_per_1k": 0.01, "output_per_1k": 0.02}},
        "judges": {"format": {"kind": "fenced_json"}},
        "prompts": {"registry": "prompts"},
        "evaluate": {"params": {"max_tokens": 48, "temperature": 0, "stop": ["\n\n"]}},
    }
    spec_path = tmp_path / "migration.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    traffic = tmp_path / "traffic.jsonl"
    rows = [
        {
            "item": f"o{i:02d}",
            "segment": {"region": "emea" if i % 2 else "apac"},
            "prompt_id": "extract-order",
            "variables": {"text": f"Order {101 + 7 * i}: {i % 5 + 1} {good}"},
        }
        for i, good in enumerate(GOODS)
    ]
    traffic.write_text("".join(json.dumps(r) + "\n" for r in rows))
    budget_calls, budget_usd = 80, 0.5
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        result = adapt(
            spec_from_dict(raw, spec_path),
            read_interactions(traffic),
            "smollm2",
            store=store,
            proposer="rules",
            budget_calls=budget_calls,
            budget_usd=budget_usd,
            labeller=human,
            fit=FIT,
        )
        stored = load_records(store)
    print(json.dumps(result.to_json(), indent=1)[:6000])  # what was tried (pytest -s)
    answers = {}
    for rec in stored:
        answers.setdefault(rec.model, []).append(rec)

    # the drift is real: SmolLM2 copies the fences of the examples, and the candidate regresses
    baseline = result.tried[0]
    assert baseline.status == "baseline" and baseline.calls == {"format": "regression"}
    notes = [(r.extra.get("check_notes") or {}).get("format") for r in answers["smollm2"]]
    assert len(notes) == len(GOODS) and notes.count(FENCE_NOTE) * 2 > len(notes)

    # a variant fixing it is found, within the budget, non-inferior on the calibrated assessment
    winner = result.winner
    assert winner is not None and result.stop == "non-inferior on every required dimension"
    assert set(winner.calls) == {"format"} and winner.calls["format"] in PASSING
    assert winner.verdict == "GO" and winner.labels_needed == 0
    fixed = answers[winner.arm]
    assert len(fixed) == len(GOODS) and not any("```" in (r.response or "") for r in fixed)
    assert sum(r.signals["format"] for r in fixed) * 2 > len(fixed)
    assert "```" not in (winner.variant.system or "") + (winner.variant.template or "")
    assert result.budget.made <= budget_calls and result.budget.spent_usd <= budget_usd
    assert result.budget.made == sum(c["made"] for c in result.calls.values())
    assert result.proposals["asked"] == len(result.tried) - 1 and "rules" not in result.calls  # no proposer calls

    # registered as the candidate's own variant, with its lineage and evidence
    registered = Registry.load(tmp_path / "prompts").prompts["extract-order"].variants["smollm2"]
    assert (registered.system, registered.template) == (winner.variant.system, winner.variant.template)
    (entry,) = [json.loads(line) for line in (tmp_path / "prompts/lineage/extract-order.jsonl").open()]
    assert entry["winner"] is True and entry["arm"] == winner.arm and entry["proposer"] == "rules"
    assert entry["pattern"] == winner.pattern and entry["root"] == "extract-order@default"
    assert entry["evidence"]["calls"] == winner.calls and entry["evidence"]["sample"] == len(GOODS)

    # the 2x2: the prompt, not the model, made the difference on SmolLM2
    assert result.ab is not None and result.ab.effects["format"]["prompt_on_new_model"] > 0.5


PROMPT = """\
id: capital
variants:
  default:
    version: 1
    template: "Example answer:\\n```json\\n{{\\"city\\": \\"Paris\\"}}\\n```\\nQuestion: {question}"
"""
CAPITALS = {"Japan": "Tokyo", "Kenya": "Nairobi", "Italy": "Rome", "Peru": "Lima"}


def test_smollm2_as_the_proposer_every_proposal_is_accounted_for_within_budget(local_llm, fake, tmp_path):
    def incumbent(body):  # the old (hosted) model: raw JSON
        user = body["messages"][-1]["content"]
        return json.dumps({"city": next(c for k, c in CAPITALS.items() if k in user)})

    fake.set("old-model", reply=incumbent)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "capital.yaml").write_text(PROMPT)
    smol = {"base_url": local_llm.base_url, "model": local_llm.model, "concurrency": 2, "timeout_s": 120}
    raw = {
        "incumbent": "old-model",
        "candidates": ["smollm2"],
        "segment_by": ["region"],
        "dimensions": {"format": {"margin": 0.1}},
        "models": {"old-model": {"base_url": fake.base_url}, "smollm2": smol},
        "judges": {"format": {"kind": "fenced_json"}},
        "prompts": {"registry": "prompts"},
        "evaluate": {"params": {"max_tokens": 24, "temperature": 0}},
    }
    spec_path = tmp_path / "migration.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text(
        "".join(
            json.dumps(
                {
                    "item": f"q{i}",
                    "segment": {"region": "a" if i % 2 else "b"},
                    "prompt_id": "capital",
                    "variables": {"question": f"What is the capital of {country}?"},
                }
            )
            + "\n"
            for i, country in enumerate(CAPITALS)
        )
    )
    budget = 20
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        result = adapt(
            spec_from_dict(raw, spec_path),
            read_interactions(traffic),
            "smollm2",
            store=store,
            proposer="smollm2",
            budget_calls=budget,
            patterns=["output_format", "instruction_specificity"],
            labeller=human,
            fit=FIT,
        )
    print(json.dumps(result.to_json(), indent=1)[:4000])  # what SmolLM2 proposed (pytest -s)

    assert result.tried[0].status == "baseline" and result.tried[0].calls  # the baseline was assessed
    proposals = result.tried[1:]
    assert result.proposals["asked"] == len(proposals) >= 1  # every proposal is a row
    assert sum(result.proposals[k] for k in ("parsed", "unparsed", "invalid", "failed")) == len(proposals)
    for row in proposals:
        assert row.status in ("evaluated", "unparsed", "invalid", "budget spent")
        if row.status == "evaluated":
            assert row.calls and row.verdict in ("GO", "NO-GO", "NEED-LABELS")
    assert result.budget.made <= budget
    assert result.budget.made == sum(c["made"] for c in result.calls.values())
    if result.winner is not None:  # a fix was found: registered with its lineage
        assert all(c in PASSING for c in result.winner.calls.values())
        variant = Registry.load(tmp_path / "prompts").prompts["capital"].variants["smollm2"]
        assert variant.template == result.winner.variant.template
        assert (tmp_path / "prompts" / "lineage" / "capital.jsonl").exists()
    else:
        assert result.stop.startswith(("budget spent", "tried"))
