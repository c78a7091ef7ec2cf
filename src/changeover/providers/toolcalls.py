"""Tool calls in one shape, whatever wire format they came in, and when two calls are the same call.

OpenAI sends ``{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}``;
the Anthropic provider gives the arguments as an object; records keep
``{"name", "arguments"}``. ``ToolCall`` holds the arguments parsed.
Two calls are the same when they name the same tool with JSON-equal
arguments after normalisation (``normalise_arguments``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_NOT_JSON = object()


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a tool: its name and arguments (parsed JSON; the raw text if it was not JSON)."""

    name: str
    arguments: Any
    id: str | None = None
    arguments_json: bool = True  # False: the model sent arguments that are not valid JSON

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}

    def wire(self, fallback_id: str) -> dict[str, Any]:
        """The call as an OpenAI assistant message carries it (arguments as JSON text)."""
        text = str(self.arguments) if not self.arguments_json else json.dumps(self.arguments, ensure_ascii=False)
        return {"id": self.id or fallback_id, "type": "function", "function": {"name": self.name, "arguments": text}}


def _parse_arguments(raw: Any) -> tuple[Any, bool]:
    if raw is None:
        return {}, True
    if isinstance(raw, str):
        if not raw.strip():
            return {}, True
        try:
            return json.loads(raw), True
        except json.JSONDecodeError:
            return raw, False
    return raw, True


def tool_call(raw: dict[str, Any]) -> ToolCall:
    """One call from any of the shapes above."""
    inner = raw.get("function")
    fn: dict[str, Any] = inner if isinstance(inner, dict) else raw
    args, ok = _parse_arguments(fn.get("arguments", fn.get("input")))
    return ToolCall(str(fn.get("name") or ""), args, raw.get("id"), ok)


def tool_calls(raw: list[dict[str, Any]] | None) -> list[ToolCall]:
    """Every call of a message's (or completion's) ``tool_calls``; an odd entry is skipped, never a crash."""
    return [tool_call(c) for c in raw or [] if isinstance(c, dict)]


def normalise_arguments(value: Any) -> Any:
    """Arguments as compared: JSON text parsed, keys with null values dropped, strings stripped.

    A model that spells an optional argument as ``null`` or pads a string makes the same call.
    """
    if isinstance(value, str):
        parsed, ok = _parse_arguments(value)
        if ok and not isinstance(parsed, str):
            return normalise_arguments(parsed)
        return value.strip()
    if isinstance(value, dict):
        return {str(k): normalise_arguments(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [normalise_arguments(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def same_call(a: ToolCall, b: ToolCall) -> bool:
    """Same tool, JSON-equal arguments after normalisation."""
    return a.name == b.name and normalise_arguments(a.arguments) == normalise_arguments(b.arguments)


def tool_names(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Tool definitions by name (OpenAI ``{"type": "function", "function": {...}}`` or bare ``{"name", ...}``)."""
    out: dict[str, dict[str, Any]] = {}
    for t in tools or []:
        fn = t.get("function") if isinstance(t.get("function"), dict) else t
        if isinstance(fn, dict) and fn.get("name"):
            out[str(fn["name"])] = fn
    return out
