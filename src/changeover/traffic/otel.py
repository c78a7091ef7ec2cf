"""OpenTelemetry GenAI spans (OTLP JSON, as the collector's file exporter writes it) into traffic rows.

The file holds ``{"resourceSpans": [...]}`` documents (one per line, or one pretty
document). Every span with ``gen_ai.operation.name`` = chat (or text_completion,
generate_content) or a ``gen_ai.request.model`` is one interaction. The request
context is read from whichever of the semantic conventions' generations the span uses:

- ``gen_ai.system_instructions``, ``gen_ai.input.messages``, ``gen_ai.output.messages``
  and ``gen_ai.tool.definitions`` attributes (JSON; messages made of ``parts``), the current form;
- span events ``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``,
  ``gen_ai.tool.message`` and ``gen_ai.choice`` (the earlier form);
- indexed attributes ``gen_ai.prompt.N.role`` / ``.content`` / ``gen_ai.completion.N.*`` (OpenLLMetry).

Segment paths address ``attributes.<key>`` (the span's) and ``resource.<key>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from changeover.traffic.common import (
    Loc,
    TrafficError,
    TrafficRow,
    openai_tool,
    read_json_records,
    request_segment,
    shape_errors,
    text_of,
    tool_call,
)

NAME = "otel"
OPERATIONS = {"chat", "text_completion", "generate_content"}
PARAMS = {
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.stop_sequences": "stop",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.presence_penalty": "presence_penalty",
}
_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")


def detect(record: Any) -> bool:
    return isinstance(record, dict) and "resourceSpans" in record


def any_value(v: Any) -> Any:
    """An OTLP ``AnyValue`` ({"stringValue": ...}, {"intValue": "3"}, arrays, kvlists) as plain JSON."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [any_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return attributes(v["kvlistValue"].get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def attributes(items: Any) -> dict[str, Any]:
    return {a["key"]: any_value(a.get("value")) for a in items or [] if isinstance(a, dict) and "key" in a}


def _json(value: Any, loc: Loc, name: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise TrafficError(f"{loc.field(name)}: not valid JSON ({exc.msg})") from None
    return value


def _from_parts(messages: list[Any], loc: Loc, name: str) -> list[dict[str, Any]]:
    """Messages of the current convention ({role, parts: [{type: text|tool_call|tool_call_response}]})."""
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise TrafficError(f"{loc.field(f'{name}.{i}.role')} is required but missing")
        texts, calls = [], []
        for p in m.get("parts", []):
            kind = p.get("type")
            if kind == "text":
                texts.append(str(p.get("content", "")))
            elif kind == "tool_call":
                calls.append(tool_call(str(p.get("id", "")), str(p.get("name", "")), p.get("arguments")))
            elif kind == "tool_call_response":
                response = p.get("response", p.get("result"))
                out.append({"role": "tool", "tool_call_id": str(p.get("id", "")), "content": text_of(response)})
        role = m["role"]
        if role == "tool":
            continue  # its tool_call_response parts were added above
        if texts or role != "assistant" or calls:
            msg: dict[str, Any] = {"role": role, "content": "\n".join(texts) if texts else None}
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
    return out


def _from_events(events: list[Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    out, choice = [], None
    for ev in events or []:
        name = ev.get("name", "")
        attrs = attributes(ev.get("attributes"))
        body = attrs
        role = {
            "gen_ai.system.message": "system",
            "gen_ai.user.message": "user",
            "gen_ai.assistant.message": "assistant",
            "gen_ai.tool.message": "tool",
        }.get(name)
        if role is not None:
            msg: dict[str, Any] = {"role": role, "content": text_of(_maybe_json(body.get("content")))}
            if role == "assistant" and body.get("tool_calls"):
                msg["tool_calls"] = _calls(_maybe_json(body["tool_calls"]))
            if role == "tool":
                msg["tool_call_id"] = str(body.get("id", ""))
            out.append(msg)
        elif name == "gen_ai.choice":
            message = _maybe_json(body.get("message")) or {}
            choice = {"content": text_of(message.get("content")) if isinstance(message, dict) else str(message)}
            if body.get("finish_reason"):
                choice["finish_reason"] = body["finish_reason"]
    return out, choice


def _maybe_json(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def _calls(raw: Any) -> list[dict[str, Any]]:
    out = []
    for c in raw if isinstance(raw, list) else []:
        fn = c.get("function", c)
        out.append(tool_call(str(c.get("id", "")), str(fn.get("name", "")), fn.get("arguments")))
    return out


def _from_indexed(attrs: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    turns: dict[tuple[str, int], dict[str, Any]] = {}
    for key, value in attrs.items():
        m = _INDEXED.match(key)
        if m:
            turns.setdefault((m.group(1), int(m.group(2))), {})[m.group(3)] = value
    prompt = [
        {"role": t.get("role", "user"), "content": t.get("content", "")}
        for (kind, _), t in sorted(turns.items())
        if kind == "prompt"
    ]
    completion = [t for (kind, _), t in sorted(turns.items()) if kind == "completion"]
    recorded = {"content": completion[0].get("content", "")} if completion else None
    return prompt, recorded


def row_from_span(span: dict[str, Any], resource: dict[str, Any], loc: Loc) -> TrafficRow | None:
    attrs = attributes(span.get("attributes"))
    op = attrs.get("gen_ai.operation.name")
    if op not in OPERATIONS and not (op is None and "gen_ai.request.model" in attrs):
        return None
    messages: list[dict[str, Any]] = []
    recorded: dict[str, Any] | None = None
    if "gen_ai.input.messages" in attrs:
        system = _json(attrs.get("gen_ai.system_instructions"), loc, "attributes.gen_ai.system_instructions")
        if system:
            parts = system if isinstance(system, list) else [{"type": "text", "content": str(system)}]
            messages.append({"role": "system", "content": "\n".join(str(p.get("content", "")) for p in parts)})
        raw_in = _json(attrs["gen_ai.input.messages"], loc, "attributes.gen_ai.input.messages")
        messages += _from_parts(raw_in, loc, "attributes.gen_ai.input.messages")
        if "gen_ai.output.messages" in attrs:
            out = _from_parts(
                _json(attrs["gen_ai.output.messages"], loc, "attributes.gen_ai.output.messages"), loc, "out"
            )
            if out:
                recorded = {k: v for k, v in out[0].items() if k != "role"}
    elif any(str(ev.get("name", "")).startswith("gen_ai.") for ev in span.get("events") or []):
        messages, recorded = _from_events(span.get("events") or [])
    else:
        messages, recorded = _from_indexed(attrs)
    if not any(m.get("role") == "user" for m in messages):
        raise TrafficError(
            f"{loc}: span '{span.get('name', '')}' is a GenAI {op or 'call'} but carries no user message "
            "(no gen_ai.input.messages attribute, gen_ai.user.message event or gen_ai.prompt.N attributes); "
            "enable content capture in the instrumentation "
            "(e.g. OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)"
        )
    tools = None
    if attrs.get("gen_ai.tool.definitions"):
        tools = []
        for t in _json(attrs["gen_ai.tool.definitions"], loc, "attributes.gen_ai.tool.definitions") or []:
            fn = t.get("function", t)
            tools.append(openai_tool(str(fn.get("name", "")), fn.get("description"), fn.get("parameters")))
    params = {v: attrs[k] for k, v in PARAMS.items() if k in attrs}
    segment = request_segment(tools, params, str(attrs.get("gen_ai.request.model") or ""))
    if recorded is not None and attrs.get("gen_ai.response.model"):
        recorded["model"] = attrs["gen_ai.response.model"]
    item = str(span.get("spanId") or f"{loc.path.stem}-{loc.line}")
    raw = {"attributes": attrs, "resource": resource, "name": span.get("name"), "traceId": span.get("traceId")}
    return TrafficRow(
        item=item,
        messages=[{k: v for k, v in m.items() if v is not None or k == "content"} for m in messages],
        tools=tools or None,
        params=params,
        segment=segment,
        recorded=recorded,
        source=str(loc),
        raw=raw,
    )


def convert(path: Path, **_: Any) -> Iterator[TrafficRow]:
    for line, doc in read_json_records(path):
        loc = Loc(path, line)
        if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
            raise TrafficError(f"{loc.field('resourceSpans')} is required: an OTLP JSON trace export")
        for r, rs in enumerate(doc["resourceSpans"]):
            with shape_errors(loc.at(f"resourceSpans.{r}")):
                resource = attributes((rs.get("resource") or {}).get("attributes"))
                scopes = list(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or [])
            for s, ss in enumerate(scopes):
                with shape_errors(loc.at(f"resourceSpans.{r}.scopeSpans.{s}")):
                    spans = list(ss.get("spans") or [])
                for k, span in enumerate(spans):
                    at = loc.at(f"resourceSpans.{r}.scopeSpans.{s}.spans.{k}")
                    with shape_errors(at):
                        row = row_from_span(span, resource, at)
                    if row is not None:
                        yield row
