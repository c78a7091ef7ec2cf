"""OpenAI chat-completions request logs: one request body per line, optionally with its response.

A line is either the request body itself (``{"model", "messages", "tools", ...}``)
or a log entry ``{"id": ..., "request": {...}, "response": {...}, "metadata": {...}}``
(the shape most proxies and gateways write). The response, when present, is kept as
the recorded answer; the request's ``metadata`` (OpenAI's string tags) becomes the segment.
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
    request_segment,
    shape_errors,
)

NAME = "openai-chat"
ROLES = ("system", "developer", "user", "assistant", "tool")
# request fields that are not generation parameters (the rest are kept as params)
NOT_PARAMS = {"messages", "model", "tools", "functions", "stream", "stream_options", "store", "metadata", "user"}


def detect(record: Any) -> bool:
    body = record.get("request", record) if isinstance(record, dict) else None
    return isinstance(body, dict) and isinstance(body.get("messages"), list) and "system" not in body


def messages_from(raw: Any, loc: Loc) -> list[dict[str, Any]]:
    """OpenAI chat messages, checked: a known role each, legacy ``function`` turns as ``tool`` turns."""
    if not isinstance(raw, list) or not raw:
        raise TrafficError(f"{loc.field('messages')} must be a non-empty list of messages")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise TrafficError(f"{loc.field(f'messages.{i}')} must be an object with 'role' and 'content'")
        m = dict(m)
        if m.get("role") == "function":  # the pre-tools API
            m = {"role": "tool", "tool_call_id": m.get("name", ""), "name": m.get("name"), "content": m.get("content")}
        if m.get("role") not in ROLES:
            raise TrafficError(
                f"{loc.field(f'messages.{i}.role')} must be one of {', '.join(ROLES)}, got {m.get('role')!r}"
            )
        if m["role"] == "assistant" and m.get("function_call"):
            fc = m.pop("function_call")
            m["tool_calls"] = [{"id": fc.get("name", "call"), "type": "function", "function": fc}]
        out.append({k: v for k, v in m.items() if v is not None})
    if not any(m["role"] == "user" for m in out):
        raise TrafficError(f"{loc.field('messages')} has no user message")
    return out


def recorded_answer(response: Any, loc: Loc) -> dict[str, Any] | None:
    """The first choice of a chat.completion response, as {model, content, tool_calls, finish_reason}."""
    if response is None:
        return None
    if not isinstance(response, dict):
        raise TrafficError(f"{loc} must be a chat.completion object, got {type(response).__name__}")
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        if "error" in response:
            return {"error": response["error"]}
        raise TrafficError(f"{loc.field('choices')} must be a non-empty list (a chat.completion object)")
    if not isinstance(choices[0], dict) or not isinstance(choices[0].get("message") or {}, dict):
        raise TrafficError(f"{loc.field('choices.0.message')} must be an object with 'content' or 'tool_calls'")
    message = choices[0].get("message") or {}
    out = {"model": response.get("model"), "content": message.get("content")}
    if message.get("tool_calls"):
        out["tool_calls"] = message["tool_calls"]
    if choices[0].get("finish_reason"):
        out["finish_reason"] = choices[0]["finish_reason"]
    return {k: v for k, v in out.items() if v is not None}


def row_from_body(
    body: dict[str, Any], item: str, loc: Loc, raw: Any, response: Any = None, record: Loc | None = None
) -> TrafficRow:
    """One chat-completions request body (and its response) as a traffic row.

    ``loc`` is where the body is (field errors name paths from it); ``record``, when the body is
    nested in a log entry, is the entry itself: the row's source and where ``response`` is read from.
    """
    record = record or loc
    messages = messages_from(need(body, "messages", loc, list), loc)
    tools = body.get("tools")
    if tools is None and body.get("functions"):
        tools = [{"type": "function", "function": f} for f in body["functions"]]
    if tools is not None and not isinstance(tools, list):
        raise TrafficError(f"{loc.field('tools')} must be a list of tool definitions")
    params = {k: v for k, v in body.items() if k not in NOT_PARAMS}
    return TrafficRow(
        item=item,
        messages=messages,
        tools=tools or None,
        params=params,
        segment=request_segment(tools, params, body.get("model"), body.get("metadata")),
        recorded=recorded_answer(response, record.at("response")),
        source=str(record),
        raw=raw,
    )


def convert(path: Path, **_: Any) -> Iterator[TrafficRow]:
    for loc, record in json_objects(path, "a log line"):
        with shape_errors(loc):
            if "request" in record:
                body = need(record, "request", loc, dict)
                yield row_from_body(body, entry_id(record, loc), loc.at("request"), record, record.get("response"), loc)
            else:
                yield row_from_body(record, entry_id(record, loc), loc, record)
