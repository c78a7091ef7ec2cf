"""Offline evaluation end to end against the fake OpenAI-compatible server, into ``assess``."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from changeover.assess import assess
from changeover.cli import run
from changeover.evaluate import evaluate, sample_interactions, write_outputs
from changeover.prompts import Interaction, read_interactions
from changeover.records import read_records
from changeover.store import open_store

from .helpers import candidate_reply, make_spec, setup_fake, traffic_rows, write_traffic


def test_stratified_sample_keeps_rare_segments_and_weights():
    inters = [
        Interaction(f"i{i}", [{"role": "user", "content": "x"}], {"region": r})
        for i, r in enumerate(["big"] * 900 + ["mid"] * 90 + ["rare"] * 10)
    ]
    sampled = sample_interactions(inters, ["region"], 100, seed=1, min_per_segment=5)
    per = Counter(s.interaction.segment["region"] for s in sampled)
    assert sum(per.values()) == 100
    assert per["rare"] >= 5 and per["big"] < 90  # not proportional (that would give rare 1)
    weight = {s.interaction.segment["region"]: s.weight for s in sampled}
    assert weight["big"] == pytest.approx(900 / per["big"]) and weight["rare"] == pytest.approx(10 / per["rare"])
    assert sum(s.weight for s in sampled) == pytest.approx(1000)
    again = sample_interactions(inters, ["region"], 100, seed=1)
    assert [s.interaction.item for s in again] == [s.interaction.item for s in sampled]


@pytest.mark.filterwarnings("ignore:the sampler may not have converged")
def test_evaluate_end_to_end_into_assess(fake, tmp_path):
    setup_fake(fake)
    spec, _ = make_spec(tmp_path, fake.base_url)
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", traffic_rows(40)))
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        result = evaluate(
            spec, inters, store=store, sample=24, labels_budget=10, label_fit={"draws": 100, "warmup": 100, "chains": 2}
        )
    recs = result.records
    assert len(recs) == 48 and {r.model for r in recs} == {"old-model", "new-model"}
    by = {(r.item, r.model): r for r in recs}
    process = next(r for r in recs if r.model == "new-model" and "process" in r.prompt)
    assert process.signals["refusal"] == 0 and process.response.startswith("I'm sorry")
    assert by[(process.item, "old-model")].signals["refusal"] == 1
    capital = next(r for r in recs if r.model == "old-model" and "capital" in r.prompt)
    assert capital.signals["correctness"] in (0, 1) and capital.signals["length"] == 1.0
    assert capital.extra["judges"]["correctness"]["judge"] == "llm:judge-model"
    assert capital.extra["judges"]["refusal"] == {
        "judge": "check:refusal_phrases",
        "rubric_sha": capital.extra["judges"]["refusal"]["rubric_sha"],
    }
    assert capital.extra["prompt_version"] == "logged" and capital.extra["finish_reason"] == "stop"
    assert capital.tokens_out > 0 and capital.latency_ms > 0
    assert capital.cost_usd == pytest.approx((capital.tokens_in * 0.5 + capital.tokens_out * 1.5) / 1000)
    assert sum(r.weight for r in recs if r.model == "old-model") == pytest.approx(40)
    assert {r.segment["region"] for r in recs} == {"emea", "apac"}
    # the judge compared candidates with the incumbent's answer (no reference in the traffic)
    judged = [c.body for c in fake.log if c.model == "judge-model"]
    assert any("REFERENCE:\nThe capital is" in b["messages"][1]["content"] for b in judged)
    assert fake.calls["old-model"] == 24 and fake.calls["new-model"] == 24 and not fake.duplicates()
    decision = assess(result.spec_for_assess, recs, draws=100, warmup=100, chains=2)
    assert decision.verdict in ("GO", "NO-GO", "NEED-LABELS")
    assert 0 < len(result.to_label) <= 10 and result.label_source == "assess.next_labels"
    assert all(row["response"] is not None and row["dimension"] in spec.dimensions for row in result.to_label)


def test_rerun_calls_nothing_twice(fake, tmp_path, store_url):
    """On SQLite and on PostgreSQL."""
    setup_fake(fake)
    spec, _ = make_spec(tmp_path, fake.base_url)
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", traffic_rows(20)))
    url = store_url
    with open_store(url) as store:
        first = evaluate(spec, inters, store=store)
    calls = dict(fake.calls)
    assert calls["judge-model"] >= 40
    with open_store(url) as store:
        second = evaluate(spec, inters, store=store)
    assert dict(fake.calls) == calls and not fake.duplicates()
    assert [r.to_dict() for r in second.records] == [r.to_dict() for r in first.records]
    assert second.arm_stats["old-model"].cached == 20 and second.arm_stats["old-model"].calls == 0
    assert first.summary()["judges"]["correctness"]["calls"]["calls"] == calls["judge-model"]
    assert second.summary()["judges"]["correctness"]["calls"]["calls"] == 0


def test_one_model_failing_loses_nothing_of_the_others(fake, tmp_path):
    setup_fake(fake)
    fake.set("new-model", fail_rate=1.0, fail_status=500)
    spec, _ = make_spec(tmp_path, fake.base_url)
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", traffic_rows(12)))
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with open_store(url) as store:
        broken = evaluate(spec, inters, store=store)
    new = [r for r in broken.records if r.model == "new-model"]
    old = [r for r in broken.records if r.model == "old-model"]
    assert all(r.error and "HTTP 500" in r.error and r.response is None for r in new)
    assert all(r.signals["refusal"] is None and r.extra["unscorable"]["refusal"] for r in new)
    assert all(r.error is None and r.signals["refusal"] in (0, 1) for r in old)
    assert broken.arm_stats["new-model"].errors == 12
    # the endpoint recovers: a rerun calls only what failed
    fake.set("new-model", fail_rate=0.0)
    before = dict(fake.calls)
    with open_store(url) as store:
        fixed = evaluate(spec, inters, store=store)
    assert fake.calls["old-model"] == before["old-model"]
    assert fake.calls["new-model"] == before["new-model"] + 12
    assert all(r.error is None for r in fixed.records)


@pytest.mark.filterwarnings("ignore:the sampler may not have converged")
def test_prompt_ab_runs_the_two_by_two(fake, tmp_path):
    setup_fake(fake)
    registry = tmp_path / "prompts"
    registry.mkdir()
    (registry / "qa.yaml").write_text(
        "id: qa\nvariants:\n  default: {version: 2, system: Answer briefly.}\n"
        "  new-model: {version: 1, system: Answer in one short sentence., params: {temperature: 0}}\n"
    )
    spec, _ = make_spec(tmp_path, fake.base_url, prompts={"registry": "prompts"})
    rows = [{**r, "prompt_id": "qa"} for r in traffic_rows(8)]
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", rows))
    result = evaluate(spec, inters, prompt_ab=True)
    assert [a.name for a in result.arms] == [
        "old-model",
        "old-model+prompt:new-model",
        "new-model+prompt:old-model",
        "new-model",
    ]
    versions = {r.model: r.extra["prompt_version"] for r in result.records}
    assert versions == {
        "old-model": "qa@default:v2",
        "old-model+prompt:new-model": "qa@new-model:v1",
        "new-model+prompt:old-model": "qa@default:v2",
        "new-model": "qa@new-model:v1",
    }
    systems = Counter((c.model, c.body["messages"][0]["content"]) for c in fake.log if c.model != "judge-model")
    assert systems == {
        ("old-model", "Answer briefly."): 8,
        ("old-model", "Answer in one short sentence."): 8,
        ("new-model", "Answer briefly."): 8,
        ("new-model", "Answer in one short sentence."): 8,
    }
    assert result.spec_for_assess.candidates == [
        "old-model+prompt:new-model",
        "new-model+prompt:old-model",
        "new-model",
    ]
    decision = assess(result.spec_for_assess, result.records, draws=60, warmup=60, chains=2).to_json()
    assert set(decision["candidates"]) == set(result.spec_for_assess.candidates)  # prompt, model, both
    paths = write_outputs(result, tmp_path / "out")
    from changeover.config import load_spec

    assert load_spec(paths["assess_spec"]).candidates == result.spec_for_assess.candidates


def test_cli_evaluate_then_assess(fake, tmp_path, capsys):
    setup_fake(fake)
    _, spec_path = make_spec(tmp_path, fake.base_url)
    traffic = write_traffic(tmp_path / "traffic.jsonl", traffic_rows(16))
    out = tmp_path / "out"
    code = run(
        [
            "evaluate",
            "--spec",
            str(spec_path),
            "--prompts",
            str(traffic),
            "--sample",
            "10",
            "--labels-budget",
            "5",
            "--out",
            str(out),
            "--db",
            str(tmp_path / "c.db"),
            "--no-progress",
            "--json",
            str(tmp_path / "summary.json"),
            "--import",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "old-model" in printed and "next: changeover assess" in printed
    assert "store: 20 records, 20 added" in printed
    records = read_records(out / "records.jsonl")
    assert len(records) == 20
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["items"] == 10 and {a["name"] for a in summary["arms"]} == {"old-model", "new-model"}
    assert len((out / "to_label.jsonl").read_text().splitlines()) <= 5
    code = run(
        [
            "assess",
            "--spec",
            str(spec_path),
            "--records",
            str(out / "records.jsonl"),
            "--draws",
            "60",
            "--warmup",
            "60",
            "--chains",
            "2",
            "--json",
            str(tmp_path / "decision.json"),
        ]
    )
    assert code in (0, 1, 3)
    assert "new-model" in json.loads((tmp_path / "decision.json").read_text())["candidates"]


def test_cli_errors_are_user_errors(fake, tmp_path, capsys):
    setup_fake(fake)
    _, spec_path = make_spec(tmp_path, fake.base_url)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"item": "a", "prompt": "x", "segment": {"region": "emea"}}\n{"item": "b"}\n')
    assert (
        run(
            [
                "evaluate",
                "--spec",
                str(spec_path),
                "--prompts",
                str(bad),
                "--no-progress",
                "--db",
                str(tmp_path / "c.db"),
            ]
        )
        == 2
    )
    assert "bad.jsonl:2:" in capsys.readouterr().err
    nosegment = write_traffic(tmp_path / "ns.jsonl", [{"item": "a", "prompt": "x"}])
    assert (
        run(
            [
                "evaluate",
                "--spec",
                str(spec_path),
                "--prompts",
                str(nosegment),
                "--no-progress",
                "--db",
                str(tmp_path / "c.db"),
            ]
        )
        == 2
    )
    assert "ns.jsonl:1: field 'segment.region' is missing" in capsys.readouterr().err
    a_file = write_traffic(tmp_path / "ok.jsonl", [{"item": "a", "prompt": "x", "segment": {"region": "emea"}}])
    assert (
        run(
            [
                "evaluate",
                "--spec",
                str(spec_path),
                "--prompts",
                str(a_file),
                "--no-progress",
                "--db",
                str(tmp_path / "c.db"),
                "--out",
                str(a_file),
            ]
        )
        == 2
    )
    assert "cannot create the output folder" in capsys.readouterr().err and fake.calls["old-model"] == 0


def test_a_bad_template_fails_before_any_call(fake, tmp_path):
    from changeover.errors import RecordsError

    setup_fake(fake)
    registry = tmp_path / "prompts"
    registry.mkdir()
    (registry / "qa.yaml").write_text("id: qa\nvariants:\n  default: {template: 'Q: {question}'}\n")
    spec, _ = make_spec(tmp_path, fake.base_url, prompts={"registry": "prompts"})
    rows = [{**r, "prompt_id": "qa", "variables": {"question": "x"}} for r in traffic_rows(6)]
    rows[4]["variables"] = {"topic": "x"}
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", rows))
    with pytest.raises(RecordsError, match=r"traffic.jsonl:5: field 'variables' has no 'question'"):
        evaluate(spec, inters)
    assert sum(fake.calls.values()) == 0


def test_tool_definitions_reach_the_models_and_tool_calls_are_judged(fake, tmp_path):
    setup_fake(fake)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Find an order",
                "parameters": {"type": "object", "properties": {"order_id": {"type": "integer"}}},
            },
        }
    ]

    def call_tool(body):
        return [{"name": "lookup_order", "arguments": {"order_id": 42}}] if body.get("tools") else None

    fake.set("new-model", tool_calls=call_tool)
    spec, _ = make_spec(tmp_path, fake.base_url)
    rows = [{**r, "tools": tools} for r in traffic_rows(4)]
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", rows))
    result = evaluate(spec, inters)
    sent = [c.body for c in fake.log if c.model in ("old-model", "new-model")]
    assert len(sent) == 8 and all(b["tools"] == tools for b in sent)
    new = [r for r in result.records if r.model == "new-model"]
    assert all(json.loads(r.response)[0]["function"]["name"] == "lookup_order" for r in new)
    assert all(r.extra["finish_reason"] == "tool_calls" and r.error is None for r in new)


def test_progress_is_a_callback_and_the_library_is_silent_without_one(fake, tmp_path, capsys):
    setup_fake(fake)
    spec, _ = make_spec(tmp_path, fake.base_url)
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", traffic_rows(6)))
    seen: list[tuple[str, int, int]] = []
    evaluate(spec, inters, progress=lambda task, done, total: seen.append((task, done, total)))
    responses = [s for s in seen if s[0] == "responses"]
    judgements = [s for s in seen if s[0] == "judgements"]
    assert [d for _, d, _ in responses] == list(range(1, 13)) and {t for _, _, t in responses} == {12}
    assert judgements[-1] == ("judgements", 36, 36)  # 12 responses x 3 judges
    evaluate(spec, inters)
    assert capsys.readouterr().out == ""


def test_rich_progress_draws_the_bars(fake, tmp_path):
    from io import StringIO

    from rich.console import Console

    from changeover.evaluate import RichProgress

    setup_fake(fake)
    spec, _ = make_spec(tmp_path, fake.base_url)
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", traffic_rows(4)))
    out = StringIO()
    with RichProgress(Console(file=out, width=100, force_terminal=False)) as bars:
        evaluate(spec, inters, progress=bars)
    drawn = out.getvalue()
    assert "responses" in drawn and "8/8" in drawn and "judgements" in drawn and "24/24" in drawn


def test_repeated_samples_draw_each_item_n_times_and_records_carry_the_index(fake, tmp_path):
    setup_fake(fake)
    draws = Counter()

    def unstable(body):  # a candidate that refuses every third time it is asked the same thing
        key = body["messages"][-1]["content"]
        draws[key] += 1
        return "I'm sorry, but I can't help with that." if draws[key] % 3 == 0 else candidate_reply(body)

    fake.set("new-model", reply=unstable)
    spec, _ = make_spec(tmp_path, fake.base_url)
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", traffic_rows(6)))
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with open_store(url) as store:
        result = evaluate(spec, inters, store=store, samples=3)
    assert fake.calls["old-model"] == 18 and fake.calls["new-model"] == 18
    assert len(result.records) == 36 and result.summary()["samples"] == 3
    per = Counter((r.item, r.model) for r in result.records)
    assert set(per.values()) == {3}
    assert {r.extra["sample"] for r in result.records} == {0, 1, 2}
    capital = [r for r in result.records if r.model == "new-model" and r.item == "t000"]
    assert sorted(r.signals["refusal"] for r in capital) == [0, 1, 1]  # one of three draws refused
    # each draw is its own cached call: a rerun calls nothing
    calls = dict(fake.calls)
    with open_store(url) as store:
        again = evaluate(spec, inters, store=store, samples=3)
    assert dict(fake.calls) == calls
    assert [r.to_dict() for r in again.records] == [r.to_dict() for r in result.records]
    # one draw (the default) is the first sample: served from the same cache, no 'sample' key
    with open_store(url) as store:
        single = evaluate(spec, inters, store=store)
    assert dict(fake.calls) == calls and all("sample" not in r.extra for r in single.records)
    # assess reads all three answers per item and names the items whose draws disagree
    from changeover.assessment import assess

    dim = assess(spec, result.records, draws=200, warmup=200).decision.candidates["new-model"].dimensions["refusal"]
    assert dim.samples == {"old-model": 3, "new-model": 3} and dim.paired_items == 6
    seen: dict[str, set[int]] = {}
    for r in result.records:
        if r.model == "new-model":
            seen.setdefault(r.item, set()).add(r.signals["refusal"])
    refused = set(dim.unstable_items["new-model"])  # items refused in some draws and not in others
    assert refused == {item for item, values in seen.items() if values == {0, 1}}
    assert len(refused) >= 4 and dim.unstable["old-model"] == 0  # the old model never refuses
