"""Langfuse exports: observations (``GET /api/public/observations``, or the UI's export) and traces
with their observations nested. Every ``GENERATION`` observation is one interaction.

A generation's ``input`` is a list of chat messages, an object with ``messages``
(and ``tools``), or a plain prompt string; ``modelParameters`` are the parameters;
``output`` is the recorded answer. Its ``name`` (what the app called the generation)
is the default ``request_type`` segment; the trace's tags, user, session and metadata
are reachable by --segment paths (``trace.metadata.region``, ``metadata.region``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from changeover.traffic.common import Loc, TrafficError, TrafficRow, json_objects, shape_errors, text_of
from changeover.traffic.openai_chat import messages_from

NAME = "langfuse"


def detect(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    if record.get("type") in ("GENERATION", "SPAN", "EVENT") and ("traceId" in record or "modelParameters" in record):
        return True
    return isinstance(record.get("observations"), list) and "id" in record


def _params(raw: Any) -> dict[str, Any]:
    """Langfuse stores model parameters as strings or numbers; numbers come back as numbers."""
    out: dict[str, Any] = {}
    for k, v in (raw or {}).items():
        if isinstance(v, str):
            v = _number(v)
        out[k] = v
    return out


def _number(text: str) -> Any:
    """``"256"`` -> 256, ``"0.7"`` / ``"1e-3"`` -> float; anything else (``"auto"``, ``"inf"``) stays text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if value == value and abs(value) != float("inf") else text


def row_from_generation(obs: dict[str, Any], trace: dict[str, Any] | None, loc: Loc) -> TrafficRow:
    inp = obs.get("input")
    tools = None
    if isinstance(inp, dict) and "messages" in inp:
        tools = inp.get("tools")
        inp = inp["messages"]
    if isinstance(inp, str):
        messages = [{"role": "user", "content": inp}]
    elif isinstance(inp, list):
        messages = messages_from(inp, loc.at("input"))
    else:
        raise TrafficError(f"{loc.field('input')} must be chat messages, an object with 'messages', or a prompt string")
    output = obs.get("output")
    recorded = None
    if output is not None:
        if isinstance(output, dict):
            recorded = {"content": text_of(output.get("content")), "model": obs.get("model")}
            if output.get("tool_calls"):
                recorded["tool_calls"] = output["tool_calls"]
        else:
            recorded = {"content": text_of(output), "model": obs.get("model")}
        recorded = {k: v for k, v in recorded.items() if v is not None}
    segment = {"request_type": str(obs.get("name") or "generation")}
    if obs.get("model"):
        segment["source_model"] = str(obs["model"])
    raw = dict(obs)
    if trace is not None:
        raw["trace"] = {k: v for k, v in trace.items() if k != "observations"}
    return TrafficRow(
        item=str(obs.get("id") or f"{loc.path.stem}-{loc.line}"),
        messages=messages,
        tools=tools or None,
        params=_params(obs.get("modelParameters")),
        segment=segment,
        recorded=recorded,
        source=str(loc),
        raw=raw,
    )


def convert(path: Path, **_: Any) -> Iterator[TrafficRow]:
    for loc, record in json_objects(path, "an export record"):
        if isinstance(record.get("observations"), list):  # a trace with its observations
            for i, obs in enumerate(record["observations"]):
                if isinstance(obs, dict) and obs.get("type") == "GENERATION":
                    with shape_errors(loc.at(f"observations.{i}")):
                        row = row_from_generation(obs, record, loc.at(f"observations.{i}"))
                    yield row
        elif record.get("type") == "GENERATION":
            with shape_errors(loc):
                row = row_from_generation(record, None, loc)
            yield row
