"""``prompts adapt`` with a real local model: SmolLM2-135M (llama.cpp) as the candidate AND the proposer.

What this shows, honestly: the whole search on a real, weak model - its answers
drift from the format (the prompt shows its JSON example inside a markdown
code fence; SmolLM2 then often answers in prose or in fences instead of raw
JSON), its proposals are messy and each one is parsed, or counted as
unparsed or invalid, never dropped; every variant that could be read is run
and assessed; the budget is never overspent and every call is accounted for.
Whether a fixing variant is found depends on what a 135M-parameter model
writes, so the test does not require it (the fake-server test does); when one
is found it must be registered with its lineage.
"""

from __future__ import annotations

import json

import pytest
import yaml
from tests.evaluate.test_adapt import FIT, human

from changeover.config import spec_from_dict
from changeover.evaluate.adapt import adapt
from changeover.prompts import Registry, read_interactions
from changeover.stats.decision import PASSING
from changeover.store import open_store

pytestmark = [pytest.mark.llm, pytest.mark.slow]

PROMPT = """\
id: capital
variants:
  default:
    version: 1
    template: "Example answer:\\n```json\\n{{\\"city\\": \\"Paris\\"}}\\n```\\nQuestion: {question}"
"""
CAPITALS = {"Japan": "Tokyo", "Kenya": "Nairobi", "Italy": "Rome", "Peru": "Lima"}


def test_smollm2_adapts_its_own_prompt_within_budget(local_llm, fake, tmp_path):
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
