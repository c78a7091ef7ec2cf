"""The OpenAI chat-completions wire format: read an answer (JSON or SSE stream) and a request's context.

Parsing happens in the background writer, never on the request path. An answer
that does not parse is ``malformed`` - one of the failure kinds the report counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Answer:
    text: str | None
    tokens_in: int | None
    tokens_out: int | None
    finish_reason: str | None
    malformed: bool = False


def _usage(obj: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = obj.get("usage") or {}
    if not isinstance(usage, dict):
        return None, None
    return usage.get("prompt_tokens"), usage.get("completion_tokens")


def parse_completion(body: bytes) -> Answer:
    """A non-streaming ``chat.completion`` body."""
    try:
        obj = json.loads(body)
        choice = obj["choices"][0]
        text = choice["message"].get("content")
        tokens_in, tokens_out = _usage(obj)
        return Answer(text if isinstance(text, str) else None, tokens_in, tokens_out, choice.get("finish_reason"))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return Answer(None, None, None, None, malformed=True)


def parse_stream(body: bytes) -> Answer:
    """A whole SSE stream of ``chat.completion.chunk`` events, joined."""
    parts: list[str] = []
    tokens_in = tokens_out = None
    finish = None
    seen = False
    try:
        for line in body.decode("utf-8").splitlines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                continue
            obj = json.loads(data)
            seen = True
            for choice in obj.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if isinstance(piece, str):
                    parts.append(piece)
                finish = choice.get("finish_reason") or finish
            if obj.get("usage"):
                tokens_in, tokens_out = _usage(obj)
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
        return Answer("".join(parts) or None, None, None, None, malformed=True)
    if not seen:
        return Answer(None, None, None, None, malformed=True)
    return Answer("".join(parts), tokens_in, tokens_out, finish)


def get_field(payload: dict[str, Any] | None, dotted: str) -> Any:
    """``metadata.request_type`` -> payload["metadata"]["request_type"] (None when absent)."""
    cur: Any = payload
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def last_user_message(payload: dict[str, Any] | None) -> str:
    messages = (payload or {}).get("messages")
    if not isinstance(messages, list):
        return ""
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """An error in OpenAI's shape, for failures of the gateway itself (upstream down, timeout)."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
