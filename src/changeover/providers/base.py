"""The model interface every provider speaks: a chat request in, a completion out.

A ``Provider`` makes one call and raises ``CallFailed`` when it fails (saying
whether a retry may help). ``ModelClient`` (client.py) adds concurrency, rate
limits, retries, timeouts and cost on top, and never raises for a failed call:
the failure is kept in ``Completion.error``, so one broken model loses nothing
of the others' results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from changeover.providers.rejection import Rejection


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat call: OpenAI-style messages, tool definitions and generation parameters.

    ``item`` names the logged interaction (the replay provider looks answers up by it).
    """

    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None
    item: str | None = None

    def fingerprint(self) -> str:
        """sha256 of messages + tools + parameters (what makes two calls the same call)."""
        blob = json.dumps(
            {"messages": self.messages, "tools": self.tools, "params": self.params},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def estimated_tokens(self) -> int:
        """A cheap upper-ish estimate for token-per-minute budgets: 4 chars a token + max_tokens."""
        chars = sum(len(str(m.get("content") or "")) for m in self.messages)
        return chars // 4 + int(self.params.get("max_tokens") or self.params.get("max_completion_tokens") or 256)


@dataclass(slots=True)
class Completion:
    """A model's answer (or the reason there is none) with what it cost."""

    text: str | None
    finish_reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    attempts: int = 1
    cost_usd: float | None = None
    ttft_ms: float | None = None  # time to the first content token (streaming calls)
    rejection: Rejection | None = None  # the endpoint refused a request parameter (see rejection.py)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completion:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if isinstance(fields.get("rejection"), dict):
            fields["rejection"] = Rejection(**fields["rejection"])
        return cls(**{"text": None, **fields})  # a tool-calls-only answer is stored without text


class CallFailed(Exception):
    """One call failed. ``retryable``: a 429, a 5xx, a timeout, a malformed body; not a 400/401/404."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.body = body  # the error body as the server sent it (parsed JSON, or text)


class Provider(Protocol):
    """One model endpoint. ``complete`` makes exactly one call (no retries)."""

    model: str

    async def complete(self, request: ChatRequest) -> Completion: ...

    async def aclose(self) -> None: ...


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header given in seconds (HTTP dates are ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
