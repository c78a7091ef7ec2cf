"""A recorded two-tool agent conversation and scripted agents for the fake server (tests and the docs' transcripts).

The incumbent calls ``get_order`` then ``track_parcel`` and answers; the candidate
looks the order up and answers without tracking the parcel (the regression the
tool checks must flag); order 7 makes it ask for another order (divergence),
order 9 call a tool nobody defined.
"""

from __future__ import annotations

import json
from typing import Any

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_order",
            "description": "Look an order up",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "integer"}},
                "required": ["order_id"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "track_parcel",
            "description": "Where a parcel is",
            "parameters": {
                "type": "object",
                "properties": {"carrier": {"type": "string"}, "tracking": {"type": "string"}},
                "required": ["carrier", "tracking"],
            },
        },
    },
]
ORDER = {"status": "shipped", "carrier": "UPS", "tracking": "1Z999"}
PARCEL = {"eta": "Friday", "location": "Leipzig hub"}


def conversation(order_id: int) -> list[dict[str, Any]]:
    """A logged agent turn after one earlier exchange: two tool calls, their results, the answer."""
    return [
        {"role": "system", "content": "You are ACME's order assistant. Use the tools."},
        {"role": "user", "content": "Hi, I have a question about an order."},
        {"role": "assistant", "content": "Sure, which order?"},
        {"role": "user", "content": f"Where is my order {order_id}?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "rec_a",
                    "type": "function",
                    "function": {"name": "get_order", "arguments": json.dumps({"order_id": order_id})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "rec_a", "content": json.dumps(ORDER)},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "rec_b",
                    "type": "function",
                    "function": {"name": "track_parcel", "arguments": '{"carrier": "UPS", "tracking": "1Z999"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "rec_b", "content": json.dumps(PARCEL)},
        {"role": "assistant", "content": "It shipped with UPS and arrives Friday."},
    ]


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]


def incumbent_agent(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Calls both tools, one per round (arguments in another key order than recorded), then answers."""
    results = tool_results(body)
    user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if not results:
        return [{"name": "get_order", "arguments": {"order_id": int(user.split()[-1].rstrip("?"))}}]
    if len(results) == 1:
        return [{"name": "track_parcel", "arguments": {"tracking": results[0]["tracking"], "carrier": "UPS "}}]
    return None


def candidate_agent(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Looks the order up, then answers from it: never tracks the parcel (the regression)."""
    if tool_results(body):
        return None
    order = int([m for m in body["messages"] if m["role"] == "user"][-1]["content"].split()[-1].rstrip("?"))
    if order == 7:  # asks for another order than the user's: the recording cannot answer (diverges)
        return [{"name": "get_order", "arguments": {"order_id": 8}}]
    if order == 9:  # a tool the request does not define
        return [{"name": "cancel_order", "arguments": {"order_id": 9}}]
    return [{"name": "get_order", "arguments": {"order_id": order}}]


def answer(body: dict[str, Any]) -> str:
    results = tool_results(body)
    return "It shipped with UPS" + (f" and arrives {results[1]['eta']}." if len(results) > 1 else ".")


AGENT_JUDGES = {
    "tool_use": {"kind": "tool_called"},
    "tool_count": {"kind": "tool_count"},
    "tool_order": {"kind": "tool_order", "arguments": True},
    "tool_args": {"kind": "tool_arguments"},
    "no_extra_calls": {"kind": "tool_abstain"},
}


def setup_agents(fake):
    fake.set("old-model", tool_calls=incumbent_agent, reply=answer)
    fake.set("new-model", tool_calls=candidate_agent, reply=answer)


def agent_rows(*orders: int) -> list[dict[str, Any]]:
    return [
        {"item": f"a{n}", "segment": {"region": "emea"}, "messages": conversation(n), "tools": TOOLS} for n in orders
    ]
