"""Telling a rejected request parameter from any other failure, from the endpoint's 400 error body.

A hosted API refuses what it does not support with a 400 whose body names the
parameter (OpenAI: ``"param": "max_tokens", "code": "unsupported_parameter"``;
vLLM and other pydantic servers: ``extra_forbidden`` at ``('body', 'x')``;
Anthropic: ``"temperature: Extra inputs are not permitted"``). Such a call is not the
model failing the task: the request needs a ``param_map`` entry. ``classify_rejection``
returns what was refused (param, reason, the suggested replacement) or None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Rejection:
    """A request parameter the endpoint refused: which, why (``unsupported_parameter`` |
    ``unsupported_value`` | ``rejected_parameter``), its message, and the replacement it suggests."""

    param: str
    reason: str
    message: str
    suggest: str | None = None

    def with_message(self, message: str) -> Rejection:
        return replace(self, message=message)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Unsupported parameter: '([\w.\[\]]+)'", re.I), "unsupported_parameter"),
    (re.compile(r"Unsupported value: '([\w.\[\]]+)'", re.I), "unsupported_value"),
    (re.compile(r"Unrecognized request arguments? supplied: ([\w.]+)", re.I), "unsupported_parameter"),
    (re.compile(r"'body', '([\w.]+)'\).{0,80}(?:extra_forbidden|Extra inputs)", re.I | re.S), "unsupported_parameter"),
    (re.compile(r"(?:extra_forbidden|Extra inputs).{0,80}'body', '([\w.]+)'", re.I | re.S), "unsupported_parameter"),
    (re.compile(r"^([\w.]+): Extra inputs are not permitted", re.I), "unsupported_parameter"),
    (re.compile(r"'([\w.]+)' is not supported", re.I), "unsupported_parameter"),
    (re.compile(r"\b(tools?|response_format|tool_choice)\b[^.]{0,40}\bnot supported", re.I), "unsupported_parameter"),
    (
        re.compile(
            r"does not support (?:the )?'?(tools|response_format|tool_choice|temperature|top_p|logprobs)'?", re.I
        ),
        "unsupported_parameter",
    ),
]
_SUGGEST = re.compile(r"[Uu]se '([\w.]+)' instead")
_TOOL_PARAMS = {"tool": "tools", "tools": "tools"}


def _error_fields(body: Any) -> tuple[str, str | None, str | None]:
    """(message, param, code) from an OpenAI, vLLM or Anthropic error body (or plain text)."""
    if isinstance(body, str):
        return body, None, None
    if not isinstance(body, dict):
        return "", None, None
    inner = body.get("error")
    err: dict[str, Any] = inner if isinstance(inner, dict) else body
    message = str(err.get("message") or "")
    param = err.get("param") if isinstance(err.get("param"), str) else None
    code = err.get("code") if isinstance(err.get("code"), str) else None
    return message, param, code


def classify_rejection(status: int | None, body: Any, sent: Iterable[str] = ()) -> Rejection | None:
    """What the endpoint refused in a 400/422, or None when it is not a parameter rejection.

    ``sent``: the parameter names the request carried; a message that quotes one of
    them counts as rejecting it even in a wording the patterns do not know.
    """
    if status not in (400, 422):
        return None
    message, param, code = _error_fields(body)
    reason = code if code in ("unsupported_parameter", "unsupported_value") else None
    if param is None or reason is None:
        for pattern, kind in _PATTERNS:
            found = pattern.search(message)
            if found:
                param = param or found.group(1)
                reason = reason or kind
                break
    if param is None:
        param = next((p for p in sent if re.search(rf"['\"`]{re.escape(p)}['\"`]", message)), None)
        if param is None:
            return None
        reason = reason or "rejected_parameter"
    suggest = _SUGGEST.search(message)
    return Rejection(
        _TOOL_PARAMS.get(param, param),
        reason or "unsupported_parameter",
        message[:300],
        suggest.group(1) if suggest else None,
    )
