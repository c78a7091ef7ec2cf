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


CHARS_PER_TOKEN = 4  # the rough rule for English text when no tokenizer is at hand


def estimate_tokens(text: str | None) -> int:
    """A rough token count (characters / 4, at least 1 for non-empty text), for answers the upstream
    gave no usage for; such counts are flagged ``tokens_estimated`` wherever they are stored."""
    if not text:
        return 0
    return max(1, round(len(text) / CHARS_PER_TOKEN))


def messages_text(payload: dict[str, Any] | None) -> str:
    """Every message's text of a chat request, joined (for estimating its input tokens)."""
    messages = (payload or {}).get("messages")
    if not isinstance(messages, list):
        return ""
    parts: list[str] = []
    for msg in messages:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "\n".join(parts)


def wants_usage(payload: dict[str, Any]) -> bool:
    """Whether the client itself asked for the final usage chunk of a stream."""
    options = payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def with_usage(payload: dict[str, Any]) -> dict[str, Any]:
    """The streamed request asking upstream for the final usage chunk (OpenAI's ``stream_options``)."""
    options = payload.get("stream_options")
    return {**payload, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}


_EVENT_ENDS = (b"\n\n", b"\r\n\r\n")
_MAX_HELD = 1 << 16  # an event longer than this is relayed as it comes (never held without bound)


class UsageStripper:
    """Relays an SSE stream minus the usage-only chunk the gateway asked for and the client did not.

    The chunk (``choices: []`` with ``usage``) would break clients reading
    ``chunk.choices[0]``. Only whole events are inspected: bytes after the last
    event boundary are held until the rest arrives; only events mentioning
    ``"usage"`` are parsed.
    """

    def __init__(self) -> None:
        self.held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.held + chunk
        cut = max(data.rfind(end) + len(end) if data.rfind(end) >= 0 else 0 for end in _EVENT_ENDS)
        if cut == 0:
            if len(data) > _MAX_HELD:
                self.held = b""
                return data
            self.held = data
            return b""
        whole, self.held = data[:cut], data[cut:]
        if b'"usage"' not in whole:
            return whole
        sep = b"\r\n\r\n" if b"\r\n\r\n" in whole else b"\n\n"
        kept = [e for e in whole.split(sep) if e and not _usage_only(e)]
        return b"".join(e + sep for e in kept)

    def flush(self) -> bytes:
        rest, self.held = self.held, b""
        return rest


def _usage_only(event: bytes) -> bool:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                obj = json.loads(line[5:])
            except ValueError:
                return False
            return isinstance(obj, dict) and obj.get("choices") == [] and "usage" in obj
    return False


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """An error in OpenAI's shape, for failures of the gateway itself (upstream down, timeout)."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
