"""Read a logged request (the parsed chat-completions body): a dotted field, the last user message."""

from __future__ import annotations

from typing import Any


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
