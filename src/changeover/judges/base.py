"""What a judge sees (a ``Case``) and says (a ``Verdict``), and the protocol every judge follows.

A verdict's ``value`` is the signal the assessment reads: 1/0 (acceptable or
not), an ordinal level 1..K, a score in [0, 1], or None: unscorable. None is
explicit and never silently becomes a pass or a fail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from changeover.providers import ChatRequest, Completion
from changeover.providers.toolcalls import ToolCall
from changeover.records import SignalValue

Ask = Callable[[ChatRequest], Awaitable[Completion]]
"""How an LLM judge calls its model: request -> completion, through providers (and the cache)."""


@dataclass(frozen=True, slots=True)
class Case:
    """One response to judge, with what it is judged against."""

    item: str
    model: str
    prompt: str  # the request as the user wrote it (last user turn)
    response: str | None
    messages: list[dict[str, Any]] = field(default_factory=list)  # the full context sent
    reference: str | None = None  # a reference answer, when the traffic has one
    incumbent_response: str | None = None  # the incumbent's answer to the same item
    is_incumbent: bool = False
    expect_refusal: bool | None = None  # should the model refuse this request?
    tools: list[dict[str, Any]] | None = None  # the tool definitions the request offered
    tool_calls: list[ToolCall] = field(default_factory=list)  # the calls this model made in the turn
    incumbent_tool_calls: list[ToolCall] | None = None  # the incumbent's: as recorded in the traffic, else live


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's signal value; ``note`` says why it is None (or what the judge said)."""

    value: SignalValue
    note: str | None = None


class Judge(Protocol):
    """Scores responses on one signal."""

    signal: str

    @property
    def identity(self) -> dict[str, str]:
        """Who judged: ``{"judge": "llm:<model>" | "check:<kind>", "rubric_sha": "..."}``."""
        ...

    async def score(self, case: Case) -> Verdict: ...


def short_sha(obj: Any) -> str:
    """A 12-hex-digit sha256 of a JSON-able object (rubric identity)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
