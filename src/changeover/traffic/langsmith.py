"""LangSmith run exports (``client.list_runs`` as JSONL/JSON, or the UI's export): every ``llm`` run is one
interaction.

``inputs.messages`` holds the chat (LangChain messages in any of their serialised
forms: ``{"role", "content"}``, ``{"type": "human", "content"}``, ``{"type": "human",
"data": {...}}`` or the ``{"lc": 1, "id": [..., "HumanMessage"], "kwargs": {...}}``
constructor form, possibly nested in a batch list); ``inputs.prompts`` plain
prompts. ``extra.invocation_params`` gives the parameters and tools, ``outputs.generations``
the recorded answer. The run's ``name`` is the default ``request_type`` segment;
``extra.metadata.*`` and ``tags`` are reachable by --segment paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from changeover.traffic.common import Loc, TrafficError, TrafficRow, json_objects, shape_errors, text_of, tool_call

NAME = "langsmith"
ROLE_OF = {
    "human": "user",
    "user": "user",
    "ai": "assistant",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "HumanMessage": "user",
    "AIMessage": "assistant",
    "SystemMessage": "system",
    "ToolMessage": "tool",
    "FunctionMessage": "tool",
}
PARAMS = ("temperature", "max_tokens", "top_p", "stop", "seed", "response_format", "max_completion_tokens")


def detect(record: Any) -> bool:
    return isinstance(record, dict) and "run_type" in record and "inputs" in record


def langchain_message(m: Any, loc: Loc) -> dict[str, Any]:
    """One serialised LangChain message as an OpenAI-style message."""
    if not isinstance(m, dict):
        raise TrafficError(f"{loc}: a message must be an object, got {type(m).__name__}")
    if m.get("lc") == 1 and isinstance(m.get("id"), list):
        kind, data = m["id"][-1], m.get("kwargs", {})
    elif "data" in m and "type" in m:
        kind, data = m["type"], m["data"]
    else:
        kind, data = m.get("role", m.get("type")), m
    role = ROLE_OF.get(str(kind))
    if role is None:
        raise TrafficError(f"{loc.field('type')}: unknown message type {kind!r}")
    out: dict[str, Any] = {"role": role, "content": text_of(data.get("content"))}
    calls = data.get("tool_calls") or (data.get("additional_kwargs") or {}).get("tool_calls")
    if role == "assistant" and calls:
        out["tool_calls"] = [
            c if "function" in c else tool_call(str(c.get("id", "")), str(c.get("name", "")), c.get("args"))
            for c in calls
        ]
    if role == "tool":
        out["tool_call_id"] = str(data.get("tool_call_id", data.get("name", "")))
    return out


def row_from_run(run: dict[str, Any], loc: Loc) -> TrafficRow:
    inputs = run.get("inputs") or {}
    if "messages" in inputs:
        msgs = inputs["messages"]
        if msgs and isinstance(msgs[0], list):  # a batch of chats: the first is this run's
            msgs = msgs[0]
        messages = [langchain_message(m, loc.at(f"inputs.messages.{i}")) for i, m in enumerate(msgs)]
    elif inputs.get("prompts"):
        messages = [{"role": "user", "content": str(inputs["prompts"][0])}]
    elif isinstance(inputs.get("prompt"), str):
        messages = [{"role": "user", "content": inputs["prompt"]}]
    else:
        raise TrafficError(f"{loc.field('inputs.messages')} is required but missing (or inputs.prompts)")
    if not any(m["role"] == "user" for m in messages):
        raise TrafficError(f"{loc.field('inputs.messages')} has no user message")
    invocation = (run.get("extra") or {}).get("invocation_params") or {}
    params = {k: invocation[k] for k in PARAMS if invocation.get(k) is not None}
    metadata = (run.get("extra") or {}).get("metadata") or {}
    segment = {"request_type": str(run.get("name") or "llm")}
    model = invocation.get("model") or invocation.get("model_name") or metadata.get("ls_model_name")
    if model:
        segment["source_model"] = str(model)
    recorded = None
    generations = (run.get("outputs") or {}).get("generations")
    if generations:
        first = generations[0][0] if isinstance(generations[0], list) else generations[0]
        message = first.get("message")
        recorded = (
            {k: v for k, v in langchain_message(message, loc.at("outputs")).items() if k != "role"}
            if isinstance(message, dict)
            else {"content": text_of(first.get("text"))}
        )
        if model:
            recorded["model"] = str(model)
    return TrafficRow(
        item=str(run.get("id") or f"{loc.path.stem}-{loc.line}"),
        messages=messages,
        tools=invocation.get("tools") or None,
        params=params,
        segment=segment,
        recorded=recorded,
        source=str(loc),
        raw=run,
    )


def convert(path: Path, **_: Any) -> Iterator[TrafficRow]:
    for loc, run in json_objects(path, "a run"):
        if "run_type" not in run:
            raise TrafficError(f"{loc.field('run_type')} is required but missing (is this a LangSmith run export?)")
        if run["run_type"] in ("llm", "chat_model"):
            with shape_errors(loc):
                row = row_from_run(run, loc)
            yield row
