"""What every traffic importer shares: the row it makes, its errors, reading the source file, segment paths.

An importer turns one source record into one ``TrafficRow``: the full request
context (system prompt, history, tool definitions, recorded tool calls and tool
results, as OpenAI-style messages), the parameters, the segment, and the
recorded answer when the source has it, appended as the last assistant message
(evaluate reads what follows the last user message as the incumbent's recorded
trajectory: its tool calls are answered from the recorded tool results).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from changeover.errors import ChangeoverError, RecordsError, where
from changeover.records import jsonl_objects


class TrafficError(RecordsError):
    """A source file of logged traffic cannot be imported (bad line, missing field, unknown format)."""


@dataclass(slots=True)
class Loc:
    """Where a source record is: file, line and (when the record is nested) its path inside the line."""

    path: Path
    line: int | None = None
    inner: str = ""

    def __str__(self) -> str:
        return where(self.path, self.line) + (f" ({self.inner})" if self.inner else "")

    def field(self, name: str) -> str:
        return f"{self}: field '{name}'"

    def at(self, inner: str) -> Loc:
        return Loc(self.path, self.line, f"{self.inner}.{inner}" if self.inner else inner)


@dataclass(slots=True)
class TrafficRow:
    """One interaction in the traffic format of ``changeover evaluate --prompts`` (docs/evaluate.md)."""

    item: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    segment: dict[str, str] = field(default_factory=dict)
    reference: str | None = None
    expect_refusal: bool | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    recorded: dict[str, Any] | None = None  # the answer the source logged (content, tool_calls, model, ...)
    source: str = ""  # file:line of the source record
    raw: Any = None  # the source record, for --segment paths (never written)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"item": self.item}
        if self.segment:
            out["segment"] = dict(self.segment)
        out["messages"] = self.messages + self.answer()
        if self.tools:
            out["tools"] = self.tools
        if self.params:
            out["params"] = self.params
        if self.variables:
            out["variables"] = self.variables
        if self.reference is not None:
            out["reference"] = self.reference
        if self.expect_refusal is not None:
            out["expect_refusal"] = self.expect_refusal
        about = {k: v for k, v in (self.recorded or {}).items() if k in ("model", "finish_reason", "error")}
        if about:
            out["recorded"] = about
        out["source"] = self.source
        return out

    def answer(self) -> list[dict[str, Any]]:
        """The recorded answer as the last assistant message: the end of the evaluated turn's trajectory.

        evaluate splits ``messages`` at the last user message: before it is the context every model
        is sent, after it the incumbent's recorded trajectory (tool calls, tool results, answer).
        """
        rec = self.recorded or {}
        if not rec.get("content") and not rec.get("tool_calls"):
            return []
        msg: dict[str, Any] = {"role": "assistant", "content": rec.get("content") or None}
        if rec.get("tool_calls"):
            msg["tool_calls"] = rec["tool_calls"]
        return [msg]


# --------------------------------------------------------------------------- reading sources


def read_text(path: Path) -> str:
    """A source file's text; a folder, an unreadable or a non-UTF-8 file is a TrafficError."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TrafficError(f"{path}: not UTF-8 text (byte {exc.start}); re-save it as UTF-8") from None
    except OSError as exc:
        raise TrafficError(f"{path}: cannot be read ({exc.strerror or exc}); give a log, trace or eval file") from None


def read_json_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, record) of a JSONL file, or of a JSON file holding one object, a list, or {"data": [...]}.

    For a JSON list the line is where each element starts, so errors still point at it.
    """
    if not path.exists():
        raise TrafficError(f"{path}: no such file")
    text = read_text(path)
    head = text.lstrip()[:1]
    if head not in ("[", "{"):
        raise TrafficError(f"{where(path, 1)}: expected JSON or JSONL (a line starting with '{{' or '['), got {head!r}")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        yield from jsonl_objects(path, TrafficError)
        return
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        yield from _array_items(text, _value_start(text, "data"), doc["data"])
    elif isinstance(doc, list):
        yield from _array_items(text, text.index("["), doc)
    else:
        yield 1 + text[: len(text) - len(text.lstrip())].count("\n"), doc


def json_objects(path: Path, what: str = "a record") -> Iterator[tuple[Loc, dict[str, Any]]]:
    """(where, record) for each record of a JSON/JSONL source; a record that is not an object is an error."""
    for line, record in read_json_records(path):
        loc = Loc(path, line)
        if not isinstance(record, dict):
            raise TrafficError(f"{loc}: {what} must be a JSON object")
        yield loc, record


def entry_id(record: dict[str, Any], loc: Loc) -> str:
    """A log entry's id: its own ``id``, else its response's, else ``<file stem>-<line>``."""
    response = record.get("response")
    found = record.get("id") or (response.get("id") if isinstance(response, dict) else None)
    return str(found or f"{loc.path.stem}-{loc.line}")


def _value_start(text: str, key: str) -> int:
    """Where the value of the top-level ``key`` of the JSON object in ``text`` starts.

    Walks the object's own keys (skipping their values whole), so the same key nested
    in an earlier value (``{"meta": {"data": [1]}, "data": [...]}``) is not taken for it.
    """
    decoder = json.JSONDecoder()
    pos = text.index("{") + 1
    while True:
        pos = _skip(text, pos, " \t\r\n,")
        name, pos = decoder.raw_decode(text, pos)
        pos = _skip(text, _skip(text, pos, " \t\r\n") + 1, " \t\r\n")  # past the ':'
        if name == key:
            return pos
        _, pos = decoder.raw_decode(text, pos)


def _skip(text: str, pos: int, chars: str) -> int:
    while text[pos] in chars:
        pos += 1
    return pos


def _array_items(text: str, start: int, items: list[Any]) -> Iterator[tuple[int, Any]]:
    """Each element of the JSON array starting at ``start`` with the line it starts on."""
    decoder = json.JSONDecoder()
    pos, line = start + 1, 1 + text.count("\n", 0, start + 1)
    for _ in items:
        while text[pos] in " \t\r\n,":
            if text[pos] == "\n":
                line += 1
            pos += 1
        obj, end = decoder.raw_decode(text, pos)
        yield line, obj
        line += text.count("\n", pos, end)
        pos = end


def read_yaml_with_lines(path: Path) -> tuple[Any, yaml.Node | None]:
    """A YAML file's value and its node tree (for line numbers); errors name file:line."""
    if not path.exists():
        raise TrafficError(f"{path}: no such file")
    text = read_text(path)
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise TrafficError(
            f"{where(path, mark.line + 1 if mark else None)}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None


def node_at(node: yaml.Node | None, *keys: str | int) -> yaml.Node | None:
    """The YAML node at a key path (mapping keys, sequence indexes); None when it is not there."""
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return None
    return node


def line_of(node: yaml.Node | None) -> int | None:
    return None if node is None else node.start_mark.line + 1


# --------------------------------------------------------------------------- fields


@contextmanager
def shape_errors(loc: Loc) -> Iterator[None]:
    """Turn a field of an unexpected shape (a string where an object belongs, a bad number) into a
    TrafficError naming the record, instead of a traceback from deep inside an importer."""
    try:
        yield
    except ChangeoverError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
        raise TrafficError(
            f"{loc}: a field of this record has an unexpected shape ({type(exc).__name__}: {exc}); "
            "check the record against the format's documentation, or pass --format"
        ) from None


def need(obj: Any, name: str, loc: Loc, kind: type | tuple[type, ...] = object) -> Any:
    """``obj[name]``, or a TrafficError naming the field when it is missing or of the wrong type."""
    if not isinstance(obj, dict) or name not in obj or obj[name] is None:
        raise TrafficError(f"{loc.field(name)} is required but missing")
    value = obj[name]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TrafficError(f"{loc.field(name)} must be {names}, got {type(value).__name__}")
    return value


def text_of(content: Any) -> str:
    """A message content (string, or a list of parts with 'text') as plain text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return json.dumps(content, ensure_ascii=False)


def resolve(obj: Any, path: str) -> Any:
    """The value at a dotted path; at each level the longest key that matches wins (``attributes.cloud.region``)."""
    parts = path.split(".")
    while parts:
        if isinstance(obj, list) and parts[0].isdigit() and int(parts[0]) < len(obj):
            obj, parts = obj[int(parts[0])], parts[1:]
            continue
        if not isinstance(obj, dict):
            return None
        for n in range(len(parts), 0, -1):
            key = ".".join(parts[:n])
            if key in obj:
                obj, parts = obj[key], parts[n:]
                break
        else:
            return None
    return obj


def segment_value(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value).lower() if isinstance(value, bool) else str(value)


def request_type(tools: list[dict[str, Any]] | None, params: dict[str, Any]) -> str:
    """The default ``request_type`` segment: tool use, structured output, or plain chat."""
    if tools:
        return "tools"
    fmt = params.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        return "structured"
    return "chat"


def request_segment(
    tools: list[dict[str, Any]] | None,
    params: dict[str, Any],
    model: Any = None,
    metadata: Any = None,
    private: tuple[str, ...] = (),
) -> dict[str, str]:
    """The default segments of one request: ``request_type``, ``source_model`` (the model it was sent to)
    and the request's own scalar ``metadata`` tags, except the ``private`` ones (identifiers, not segments)."""
    segment = {"request_type": request_type(tools, params)}
    if isinstance(model, str) and model:
        segment["source_model"] = model
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if isinstance(value, (str, int, float, bool)) and key not in private:
                segment[str(key)] = str(segment_value(value))
    return segment


def fill_call_ids(messages: list[dict[str, Any]], prefix: str = "call") -> list[dict[str, Any]]:
    """Give tool calls logged without an id one (``call_<turn>_<n>``), and the ``tool`` results without
    one the id of the call they answer, in order - as the traffic format (and OpenAI) require.

    Some trace exports drop the ids; the n-th result after an assistant turn answers its n-th call.
    """
    out: list[dict[str, Any]] = []
    pending: list[str] = []  # ids of the last assistant turn's calls not answered yet, in order
    for t, message in enumerate(messages):
        message = dict(message)
        if message.get("role") == "assistant" and message.get("tool_calls"):
            calls = []
            for n, call in enumerate(message["tool_calls"]):
                if isinstance(call, dict) and not call.get("id"):
                    call = {**call, "id": f"{prefix}_{t}_{n}"}
                calls.append(call)
            message["tool_calls"] = calls
            pending = [c["id"] for c in calls if isinstance(c, dict)]
        elif message.get("role") == "tool":
            if not message.get("tool_call_id") and pending:
                message["tool_call_id"] = pending[0]
            if message.get("tool_call_id") in pending:
                pending.remove(message["tool_call_id"])
        out.append(message)
    return out


def openai_tool(name: str, description: str | None, schema: Any) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": name}
    if description:
        fn["description"] = description
    fn["parameters"] = schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
    return {"type": "function", "function": fn}


def tool_call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments or {}, ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
