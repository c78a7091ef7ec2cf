"""Agents: a conversation replayed up to its evaluated turn, tool calls answered from the recording,
and the deterministic tool-use checks flagging a candidate that drops a call.

Against the fake OpenAI server, whose models call tools as scripted per request
(on the tool results the request already carries), over the real wire protocol.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from tests.support.fake_openai import _messages_text, count_tokens

from changeover.assess import assess
from changeover.config import spec_from_dict
from changeover.evaluate import evaluate, split_turn
from changeover.prompts import read_interactions
from changeover.providers.toolcalls import ToolCall, normalise_arguments, same_call, tool_calls

from .agents import AGENT_JUDGES, ORDER, PARCEL, TOOLS, agent_rows, answer, conversation, setup_agents
from .helpers import spec_dict, write_traffic


def agent_spec(fake, tmp_path, **evaluate_section):
    raw = spec_dict(fake.base_url)
    raw["dimensions"] = {"tool_use": {"margin": 0.05}, "tool_order": {"margin": 0.05}}
    raw["judges"] = dict(AGENT_JUDGES)
    raw["evaluate"] = {"params": {"max_tokens": 64}, **evaluate_section}
    return spec_from_dict(raw, tmp_path / "migration.yaml")


def test_two_tool_agent_candidate_dropping_a_call_is_flagged(fake, tmp_path):
    setup_agents(fake)
    spec = agent_spec(fake, tmp_path)
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", agent_rows(41, 42, 43)))
    result = evaluate(spec, inters)
    by = {(r.item, r.model): r for r in result.records}
    old, new = by[("a42", "old-model")], by[("a42", "new-model")]

    # the incumbent replayed both calls (answered from the recording) and gave its final answer
    assert old.extra["tool_status"] == "answered" and old.extra["tool_rounds"] == 3
    assert [c["name"] for c in old.extra["tool_calls"]] == ["get_order", "track_parcel"]
    assert old.response == "It shipped with UPS and arrives Friday." and old.error is None
    assert old.signals == {"tool_use": 1, "tool_count": 1, "tool_order": 1, "tool_args": 1, "no_extra_calls": None}

    # the candidate dropped track_parcel: it answered, and the tool checks flag it
    assert new.extra["tool_status"] == "answered" and new.response == "It shipped with UPS."
    assert [c["name"] for c in new.extra["tool_calls"]] == ["get_order"]
    assert new.signals == {"tool_use": 0, "tool_count": 0, "tool_order": 0, "tool_args": 1, "no_extra_calls": None}
    assert new.extra["check_notes"]["tool_use"] == "did not call track_parcel (called: get_order)"
    assert new.extra["check_notes"]["tool_count"] == "1 call(s), the incumbent 2"

    # what the incumbent was sent: the context up to the evaluated turn, then the recorded results
    sent = [c.body for c in fake.log if c.model == "old-model" and "order 42" in json.dumps(c.body)]
    assert len(sent) == 3
    first, second, third = sent
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant", "user"]
    assert first["messages"][-1] == {"role": "user", "content": "Where is my order 42?"}
    assert first["tools"] == TOOLS and first["max_tokens"] == 64
    call = second["messages"][-2]["tool_calls"][0]
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(ORDER)}
    assert json.loads(third["messages"][-1]["content"]) == PARCEL  # matched despite key order and padding
    assert old.tokens_in == sum(count_tokens(_messages_text(b)) for b in sent)  # every round's cost counted
    assert result.arm_stats["old-model"].calls == 9 and result.arm_stats["new-model"].calls == 6
    assert result.summary()["arms"][1]["tool_status"] == {"answered": 3}
    from changeover.evaluate import label_rows

    (row,) = label_rows([{"item": "a42", "model": "new-model", "dimension": "tool_use"}], result.records)
    assert row["tool_calls"] == [{"name": "get_order", "arguments": {"order_id": 42}}]
    assert row["tool_status"] == "answered"

    # the tool signals are dimensions like any other: assess reads them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decision = assess(result.spec_for_assess, result.records, draws=60, warmup=60, chains=2).to_json()
    assert set(decision["candidates"]["new-model"]["dimensions"]) >= {"tool_use", "tool_order"}


def test_divergence_unknown_tool_and_max_rounds_stop_with_a_status(fake, tmp_path):
    setup_agents(fake)

    def loops(body):  # calls the same recorded call again and again
        return [{"name": "get_order", "arguments": {"order_id": 5}}]

    fake.set("loop-model", tool_calls=loops, reply=answer)
    raw = spec_dict(fake.base_url)
    raw["candidates"] = ["new-model", "loop-model"]
    raw["models"]["loop-model"] = dict(raw["models"]["new-model"])
    raw["dimensions"] = {"tool_use": {"margin": 0.05}}
    raw["judges"] = dict(AGENT_JUDGES)
    raw["evaluate"] = {"max_tool_rounds": 3}
    spec = spec_from_dict(raw, tmp_path / "migration.yaml")
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", agent_rows(5, 7, 9)))
    result = evaluate(spec, inters)
    by = {(r.item, r.model): r for r in result.records}

    diverged = by[("a7", "new-model")]
    assert diverged.extra["tool_status"] == "tool_divergence" and diverged.error is None
    assert diverged.extra["tool_divergence"] == {
        "round": 1,
        "call": {"name": "get_order", "arguments": {"order_id": 8}},
        "reason": "the recording has 'get_order' only with other arguments: [{\"order_id\": 7}]",
    }
    assert json.loads(diverged.response)[0]["function"]["name"] == "get_order"  # the unanswered call
    assert diverged.signals["tool_use"] == 0

    unknown = by[("a9", "new-model")]
    assert unknown.extra["tool_status"] == "unknown_tool"
    assert unknown.extra["tool_divergence"]["reason"].startswith("'cancel_order' is not one of the request's tools")
    assert unknown.signals["tool_args"] == 0 and "not a defined tool" in unknown.extra["check_notes"]["tool_args"]

    looping = by[("a5", "loop-model")]
    assert looping.extra["tool_status"] == "max_tool_rounds" and looping.extra["tool_rounds"] == 3
    assert len(looping.extra["tool_calls"]) == 3
    assert fake.calls["loop-model"] == 3 + 1 + 1  # a5: 3 rounds, then it stopped; a7, a9: diverged at once
    assert result.summary()["arms"][1]["tool_status"] == {"answered": 1, "tool_divergence": 1, "unknown_tool": 1}


def test_a_rerun_of_an_agent_replay_calls_nothing_twice(fake, tmp_path):
    from changeover.store import open_store

    setup_agents(fake)
    spec = agent_spec(fake, tmp_path)
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", agent_rows(41, 42)))
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        first = evaluate(spec, inters, store=store)
    calls = dict(fake.calls)
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        second = evaluate(spec, inters, store=store)
    assert dict(fake.calls) == calls and not fake.duplicates()
    assert [r.to_dict() for r in second.records] == [r.to_dict() for r in first.records]
    assert second.arm_stats["old-model"].cached == 6


def test_split_turn_and_call_equivalence():
    turn = split_turn(conversation(3))
    assert [m["role"] for m in turn.context] == ["system", "user", "assistant", "user"]
    assert [c.name for c in turn.recorded_calls] == ["get_order", "track_parcel"]
    assert turn.result_for(ToolCall("get_order", {"order_id": 3.0}))[0] == json.dumps(ORDER)
    assert turn.result_for(ToolCall("get_order", {"order_id": 4}))[0] is None
    plain = split_turn([{"role": "user", "content": "hi"}])
    assert not plain.has_recording and plain.result_for(ToolCall("x", {}))[1] == (
        "the recording has no tool results for this turn"
    )
    assert normalise_arguments('{"a": " b ", "c": null, "d": [1.0]}') == {"a": "b", "d": [1]}
    a, b = tool_calls(
        [
            {"id": "1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1, "y": "z"}'}},
            {"type": "function", "id": "2", "function": {"name": "f", "arguments": {"y": "z", "x": 1}}},
        ]
    )
    assert same_call(a, b) and not same_call(a, ToolCall("g", {"x": 1, "y": "z"}))
    (broken,) = tool_calls([{"function": {"name": "f", "arguments": "{not json"}}])
    assert not broken.arguments_json and broken.arguments == "{not json"


def test_a_replayed_tool_turn_reaches_anthropic_as_tool_use_and_tool_result_blocks():
    from changeover.providers import ChatRequest
    from changeover.providers.anthropic import to_anthropic

    messages = conversation(42)[:-1]  # up to the second tool result: the model is to answer now
    body = to_anthropic("claude", ChatRequest(messages, {"max_tokens": 50}, TOOLS))
    assert body["system"].startswith("You are ACME") and [m["role"] for m in body["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert body["messages"][3]["content"] == [
        {"type": "tool_use", "id": "rec_a", "name": "get_order", "input": {"order_id": 42}}
    ]
    assert body["messages"][4]["content"] == [
        {"type": "tool_result", "tool_use_id": "rec_a", "content": json.dumps(ORDER)}
    ]
    assert body["tools"][1]["name"] == "track_parcel" and body["tools"][1]["input_schema"]["required"]


def test_malformed_tool_turns_are_errors_naming_the_line(tmp_path):
    import pytest

    from changeover.errors import RecordsError

    good = conversation(1)
    no_id = [*good[:5], {"role": "tool", "content": "{}"}]
    stray = [*good[:4], {"role": "tool", "tool_call_id": "nope", "content": "{}"}]
    bad_call = [*good[:4], {"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]
    for rows, field in ((no_id, "needs 'tool_call_id'"), (stray, "answers no earlier"), (bad_call, "needs 'id'")):
        path = write_traffic(
            tmp_path / "t.jsonl",
            [{"item": "ok", "messages": good}, {"item": "bad", "messages": rows}],
        )
        with pytest.raises(RecordsError, match=rf"t.jsonl:2: .*{field}"):
            read_interactions(path)


def test_recorded_parallel_calls_answer_a_model_that_makes_them_one_by_one():
    import asyncio

    from changeover.evaluate import replay_turn
    from changeover.providers import ChatRequest, Completion

    recorded = [
        {"role": "user", "content": "Order 42: where is it, and what did it cost?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "p1", "type": "function", "function": {"name": "get_order", "arguments": '{"order_id": 42}'}},
                {
                    "id": "p2",
                    "type": "function",
                    "function": {"name": "track_parcel", "arguments": '{"carrier": "UPS", "tracking": "1Z999"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "p1", "content": json.dumps(ORDER)},
        {"role": "tool", "tool_call_id": "p2", "content": json.dumps(PARCEL)},
        {"role": "assistant", "content": "Shipped, arrives Friday."},
    ]
    script = [
        [{"id": "m1", "function": {"name": "track_parcel", "arguments": '{"tracking": "1Z999", "carrier": "UPS"}'}}],
        [{"id": "m2", "function": {"name": "get_order", "arguments": '{"order_id": 42}'}}],
        None,
    ]
    seen: list[list[dict[str, Any]]] = []

    async def call(request: ChatRequest) -> Completion:
        seen.append(request.messages)
        calls = script[len(seen) - 1]
        return Completion(text=None if calls else "Arrives Friday.", tool_calls=calls, tokens_in=10, tokens_out=2)

    turn = split_turn(recorded)
    replay = asyncio.run(replay_turn(call, ChatRequest(turn.context, {}, TOOLS, "p"), turn, 8))
    assert replay.status == "answered" and replay.rounds == 3 and replay.completion.text == "Arrives Friday."
    assert [c.name for c in replay.calls] == ["track_parcel", "get_order"]
    assert seen[1][-1] == {"role": "tool", "tool_call_id": "m1", "content": json.dumps(PARCEL)}
    assert seen[2][-1] == {"role": "tool", "tool_call_id": "m2", "content": json.dumps(ORDER)}
    assert (replay.completion.tokens_in, replay.completion.tokens_out) == (30, 6)  # summed over the rounds


def test_a_streaming_agent_is_replayed_the_same(fake, tmp_path):
    """Tool calls streamed in pieces (SSE) are assembled and answered like non-streamed ones."""
    setup_agents(fake)
    raw = spec_dict(fake.base_url)
    raw["models"]["old-model"]["stream"] = True
    raw["models"]["new-model"]["stream"] = True
    raw["dimensions"] = {"tool_use": {"margin": 0.05}}
    raw["judges"] = dict(AGENT_JUDGES)
    spec = spec_from_dict(raw, tmp_path / "migration.yaml")
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", agent_rows(42, 7)))
    result = evaluate(spec, inters)
    by = {(r.item, r.model): r for r in result.records}
    old, new = by[("a42", "old-model")], by[("a42", "new-model")]
    assert all(c.body.get("stream") for c in fake.log)
    assert old.extra["tool_status"] == "answered" and old.response == "It shipped with UPS and arrives Friday."
    assert [c["name"] for c in old.extra["tool_calls"]] == ["get_order", "track_parcel"]
    assert new.signals["tool_use"] == 0 and new.signals["tool_args"] == 1
    diverged = by[("a7", "new-model")]
    assert diverged.extra["tool_status"] == "tool_divergence"
    assert json.loads(diverged.response)[0]["function"] == {"name": "get_order", "arguments": '{"order_id": 8}'}


def test_recorded_results_without_call_ids_answer_their_own_calls():
    """Traces that log tool calls without ids (``""`` on each) used to answer every call with the last result."""
    messages = [
        {"role": "user", "content": "Where are orders 1 and 2?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "", "type": "function", "function": {"name": "get_order", "arguments": '{"order_id": 1}'}},
                {"id": "", "type": "function", "function": {"name": "get_order", "arguments": '{"order_id": 2}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "", "content": "order 1: shipped"},
        {"role": "tool", "tool_call_id": "", "content": "order 2: packing"},
        {"role": "assistant", "content": "1 shipped, 2 is being packed."},
    ]
    turn = split_turn(messages)
    assert turn.result_for(ToolCall("get_order", {"order_id": 1})) == ("order 1: shipped", None)
    assert turn.result_for(ToolCall("get_order", {"order_id": 2})) == ("order 2: packing", None)
    with_ids = [dict(m) for m in messages]
    with_ids[1] = {**messages[1], "tool_calls": [{**c, "id": f"c{i}"} for i, c in enumerate(messages[1]["tool_calls"])]}
    with_ids[2], with_ids[3] = {**messages[3], "tool_call_id": "c1"}, {**messages[2], "tool_call_id": "c0"}
    assert split_turn(with_ids).result_for(ToolCall("get_order", {"order_id": 1})) == ("order 1: shipped", None)
