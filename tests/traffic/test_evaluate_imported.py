"""Imported traffic is what `changeover evaluate` runs on: full runs against the fake OpenAI server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from tests.evaluate.helpers import setup_fake, spec_dict

from changeover.cli import run
from changeover.records import read_records

SAMPLES = Path(__file__).parent / "samples"


def order_lookup(body: dict) -> list[dict] | None:
    """The incumbent agent: looks the order of the question up once, then answers (the reply)."""
    if not body.get("tools") or any(m["role"] == "tool" for m in body["messages"]):
        return None
    question = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    order = re.search(r"\b(\d{4})\b", question)
    return [{"name": "get_order_status", "arguments": {"order_id": order.group(1) if order else "?"}}]


@pytest.mark.parametrize(
    ("sample", "segment", "regions"),
    [
        ("openai_chat_log.jsonl", [], {"emea", "apac"}),
        ("otel_genai_spans.jsonl", ["--segment", "region=resource.cloud.region"], {"eu-west-1", "us-east-1"}),
        ("langfuse_observations.json", ["--segment", "region=metadata.region"], {"emea", "apac"}),
    ],
)
def test_evaluate_runs_on_imported_traffic(fake, tmp_path, capsys, sample, segment, regions):
    setup_fake(fake)
    fake.set("old-model", tool_calls=order_lookup)
    spec = tmp_path / "migration.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(fake.base_url)))  # segment_by: [region]
    traffic = tmp_path / "traffic.jsonl"
    assert run(["traffic", "import", str(SAMPLES / sample), "--out", str(traffic), *segment]) == 0
    out = tmp_path / "out"
    code = run(
        ["evaluate", "--spec", str(spec), "--prompts", str(traffic), "--out", str(out)]
        + ["--db", str(tmp_path / "c.db"), "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    imported = {row["item"]: row for row in map(json.loads, traffic.read_text().splitlines())}
    records = read_records(out / "records.jsonl")
    assert {r.model for r in records} == {"old-model", "new-model"}
    assert {r.item for r in records} == set(imported)
    assert {r.segment["region"] for r in records} == regions
    assert all(r.error is None for r in records)
    # every model is sent the context (system prompt, history up to the last user turn) and the tools;
    # the incumbent's call of the recorded tool is answered with the recorded result
    replayed = [
        r for r in records if r.model == "old-model" and any(m["role"] == "tool" for m in imported[r.item]["messages"])
    ]
    assert len(replayed) == 1
    rec = replayed[0]
    assert rec.extra["tool_status"] == "answered" and rec.extra["tool_rounds"] == 2
    assert [c["name"] for c in rec.extra["tool_calls"]] == ["get_order_status"]
    second = [
        c.body for c in fake.log if c.model == "old-model" and any(m["role"] == "tool" for m in c.body["messages"])
    ]
    assert len(second) == 1 and "shipped" in second[0]["messages"][-1]["content"]
    assert (
        second[0]["messages"][0]["role"] == "system" and second[0]["tools"][0]["function"]["name"] == "get_order_status"
    )
    candidate = next(r for r in records if r.model == "new-model" and r.item == rec.item)
    assert candidate.extra["tool_status"] == "answered" and candidate.extra["tool_calls"] == []
    # a recorded call without a recorded result cannot be answered: the replay says so instead of inventing one
    unanswerable = [r for r in records if r.model == "old-model" and r.extra.get("tool_status") == "tool_divergence"]
    expected = 1 if sample == "openai_chat_log.jsonl" else 0
    assert len(unanswerable) == expected


@pytest.mark.parametrize(
    "sample",
    [
        "openai_batch_input.jsonl",
        "anthropic_messages_log.jsonl",
        "langsmith_runs.jsonl",
        "openai_evals_samples.jsonl",
        "promptfooconfig.yaml",
    ],
)
def test_every_other_format_evaluates_too(fake, tmp_path, capsys, sample):
    setup_fake(fake)
    raw = spec_dict(fake.base_url)
    raw["segment_by"] = ["request_type"]  # every importer sets it
    spec = tmp_path / "migration.yaml"
    spec.write_text(yaml.safe_dump(raw))
    traffic = tmp_path / "traffic.jsonl"
    assert run(["traffic", "import", str(SAMPLES / sample), "--out", str(traffic)]) == 0
    out = tmp_path / "out"
    code = run(
        ["evaluate", "--spec", str(spec), "--prompts", str(traffic), "--out", str(out)]
        + ["--db", str(tmp_path / "c.db"), "--no-progress"]
    )
    assert code == 0, capsys.readouterr().out
    items = {json.loads(x)["item"] for x in traffic.read_text().splitlines()}
    records = read_records(out / "records.jsonl")
    assert len(records) == 2 * len(items) and {r.item for r in records} == items
    assert all(r.error is None and r.response for r in records)
    # what the incumbent was sent is the imported context, up to the last user turn
    sent = {c.body["messages"][-1]["content"] for c in fake.log if c.model == "old-model"}
    wanted = set()
    for row in map(json.loads, traffic.read_text().splitlines()):
        last_user = max(i for i, m in enumerate(row["messages"]) if m["role"] == "user")
        wanted.add(row["messages"][last_user]["content"])
    assert sent == wanted
