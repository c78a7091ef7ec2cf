"""Anthropic Messages API request logs (and Message Batches lines), into OpenAI-style messages.

A line is a request body (``{"model", "system", "messages", "tools", "max_tokens"}``),
a log entry ``{"id", "request", "response"}``, or a Message Batches request
``{"custom_id", "params"}``. Content blocks become messages: ``text`` blocks join into
the content, an assistant's ``tool_use`` blocks become ``tool_calls``, a user's
``tool_result`` blocks become ``tool`` messages (before the rest of that user turn).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from changeover.traffic.common import (
    Loc,
    TrafficError,
    TrafficRow,
    entry_id,
    json_objects,
    need,
    openai_tool,
    request_segment,
    shape_errors,
    text_of,
    tool_call,
)

NAME = "anthropic"
PARAMS = {"max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "stop_sequences": "stop"}


def detect(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    body = record.get("request") or record.get("params") or record
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return False
    messages = [m for m in body["messages"] if isinstance(m, dict)]
    if any(isinstance(m.get("content"), list) and any(_anthropic_block(b) for b in m["content"]) for m in messages):
        return True
    if any(m.get("role") in ("system", "developer", "tool") or m.get("tool_calls") for m in messages):
        return False  # OpenAI-shaped, whatever the model (a gateway's log of a Claude call)
    return (
        "system" in body
        or "stop_sequences" in body
        or "top_k" in body
        or str(body.get("model", "")).startswith("claude")
    )


def _anthropic_block(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") in ("tool_use", "tool_result", "thinking", "document")


def _turns(message: dict[str, Any], loc: Loc) -> list[dict[str, Any]]:
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise TrafficError(f"{loc.field('role')} must be 'user' or 'assistant', got {role!r}")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise TrafficError(f"{loc.field('content')} must be a string or a list of content blocks")
    texts, calls, results = [], [], []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(
                tool_call(need(block, "id", loc.at(f"content.{j}"), str), block.get("name", ""), block.get("input"))
            )
        elif kind == "tool_result":
            results.append(
                {
                    "role": "tool",
                    "tool_call_id": need(block, "tool_use_id", loc.at(f"content.{j}"), str),
                    "content": text_of(block.get("content")),
                }
            )
        elif kind in ("image", "document", "thinking", "redacted_thinking"):
            continue  # not replayable as text; the rest of the turn is kept
        else:
            raise TrafficError(f"{loc.field(f'content.{j}.type')}: unknown content block type {kind!r}")
    out: list[dict[str, Any]] = list(results)
    if role == "assistant":
        turn: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts else None}
        if calls:
            turn["tool_calls"] = calls
        out.append({k: v for k, v in turn.items() if v is not None or k == "content"})
    elif texts:
        out.append({"role": "user", "content": "\n".join(texts)})
    return out


def row_from_body(body: dict[str, Any], item: str, loc: Loc, raw: Any, response: Any = None) -> TrafficRow:
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": text_of(system)})
    for i, m in enumerate(need(body, "messages", loc, list)):
        if not isinstance(m, dict):
            raise TrafficError(f"{loc.field(f'messages.{i}')} must be an object")
        messages += _turns(m, loc.at(f"messages.{i}"))
    if not any(m["role"] == "user" for m in messages):
        raise TrafficError(f"{loc.field('messages')} has no user text")
    tools = None
    if body.get("tools"):
        tools = []
        for i, t in enumerate(need(body, "tools", loc, list)):
            if isinstance(t, dict) and "input_schema" not in t and "type" in t:
                continue  # server tools (web search, code execution) have no schema to replay
            tools.append(
                openai_tool(need(t, "name", loc.at(f"tools.{i}"), str), t.get("description"), t.get("input_schema"))
            )
    params = {PARAMS[k]: v for k, v in body.items() if k in PARAMS}
    return TrafficRow(
        item=item,
        messages=messages,
        tools=tools or None,
        params=params,
        segment=request_segment(tools, params, body.get("model"), body.get("metadata"), private=("user_id",)),
        recorded=_recorded(response),
        source=str(loc),
        raw=raw,
    )


def _recorded(response: Any) -> dict[str, Any] | None:
    if not isinstance(response, dict) or not isinstance(response.get("content"), list):
        return None
    texts = [b.get("text", "") for b in response["content"] if b.get("type") == "text"]
    calls = [
        tool_call(b.get("id", ""), b.get("name", ""), b.get("input"))
        for b in response["content"]
        if b.get("type") == "tool_use"
    ]
    out: dict[str, Any] = {"model": response.get("model"), "content": "\n".join(texts)}
    if calls:
        out["tool_calls"] = calls
    if response.get("stop_reason"):
        out["finish_reason"] = response["stop_reason"]
    return out


def convert(path: Path, **_: Any) -> Iterator[TrafficRow]:
    for loc, record in json_objects(path, "a log line"):
        with shape_errors(loc):
            if "params" in record and "custom_id" in record:
                params = need(record, "params", loc, dict)
                yield row_from_body(params, str(record["custom_id"]), loc.at("params"), record)
            elif "request" in record:
                request = need(record, "request", loc, dict)
                yield row_from_body(request, entry_id(record, loc), loc.at("request"), record, record.get("response"))
            else:
                yield row_from_body(record, entry_id(record, loc), loc, record)
