"""Replaying one conversation turn: the context up to the evaluated turn, and an agent's tool calls
answered from the recorded tool results.

A traffic item's ``messages`` hold the conversation; the evaluated turn starts
at the last user message. What follows it in the log is the incumbent's
recorded trajectory: assistant messages with ``tool_calls``, the ``tool``
results (by ``tool_call_id``) and, usually, the final answer. Every model gets
the context; when it calls a tool, the call is answered with the recorded
result of the same call (same tool, JSON-equal arguments after
normalisation), and the model is asked again, until it answers without
calling a tool. The replay stops with a status instead of inventing a result:

- ``answered``: the model gave its final answer;
- ``tool_divergence``: it made a call the recording has no result for (``divergence`` says which);
- ``unknown_tool``: it called a tool the request does not define;
- ``max_tool_rounds``: still calling tools after ``max_rounds`` model turns;
- ``error``: a model call failed (the completion's ``error``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from changeover.providers import ChatRequest, Completion
from changeover.providers.toolcalls import ToolCall, same_call, tool_calls, tool_names

Call = Callable[[ChatRequest], Awaitable[Completion]]


@dataclass(frozen=True)
class Turn:
    """A conversation split at its evaluated turn."""

    context: list[dict[str, Any]]  # what every model is sent: up to and including the last user message
    recorded: list[dict[str, Any]] = field(default_factory=list)  # the logged messages after it

    @property
    def has_recording(self) -> bool:
        return bool(self.recorded)

    @property
    def recorded_calls(self) -> list[ToolCall]:
        """The incumbent's logged tool calls of this turn, in order."""
        return [c for m in self.recorded if m.get("role") == "assistant" for c in tool_calls(m.get("tool_calls"))]

    def results(self) -> list[tuple[ToolCall, Any]]:
        """(recorded call, its recorded result) for every call that has a ``tool`` message answering it.

        Results answer calls by ``tool_call_id``; where the log has no usable ids (missing, or
        the same one on several calls, as some trace exports write them), the n-th result of the
        turn answers its n-th call - never every call with the last result.
        """
        calls = self.recorded_calls
        answers = [m for m in self.recorded if m.get("role") == "tool"]
        ids = [c.id for c in calls]
        if all(ids) and len(set(ids)) == len(ids):
            by_id = {m.get("tool_call_id"): m.get("content") for m in answers}
            return [(c, by_id[c.id]) for c in calls if c.id in by_id]
        return [(c, m.get("content")) for c, m in zip(calls, answers, strict=False)]

    def result_for(self, call: ToolCall) -> tuple[Any, str | None]:
        """(the recorded result, None) for a matching call, else (None, why there is none)."""
        pairs = self.results()
        for recorded, result in pairs:
            if same_call(call, recorded):
                return result, None
        same_tool = [r.arguments for r, _ in pairs if r.name == call.name]
        if same_tool:
            shown = json.dumps(same_tool[:3], ensure_ascii=False)[:300]
            return None, f"the recording has '{call.name}' only with other arguments: {shown}"
        if not pairs:
            return None, "the recording has no tool results for this turn"
        return None, f"the recording has no call of '{call.name}'"


def split_turn(messages: list[dict[str, Any]]) -> Turn:
    """Split at the last user message: the context, and the recorded trajectory after it."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last_user is None:
        return Turn(list(messages))
    return Turn(list(messages[: last_user + 1]), list(messages[last_user + 1 :]))


@dataclass(frozen=True)
class Divergence:
    """Where a replay stopped: the round, the call the recording could not answer, and why."""

    round: int
    call: ToolCall
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "call": self.call.to_dict(), "reason": self.reason}


@dataclass
class Replay:
    """What one model did on one turn: its final completion (costs summed over rounds) and its tool calls."""

    completion: Completion
    calls: list[ToolCall]
    rounds: int
    status: str
    divergence: Divergence | None = None


def _summed(completions: list[Completion]) -> Completion:
    """The last completion, with tokens, latency and cost summed over every round."""
    last = completions[-1]
    if len(completions) == 1:
        return last

    def total(name: str) -> Any:
        values = [getattr(c, name) for c in completions if getattr(c, name) is not None]
        return sum(values) if values else None

    return replace(
        last,
        tokens_in=total("tokens_in"),
        tokens_out=total("tokens_out"),
        latency_ms=total("latency_ms"),
        cost_usd=total("cost_usd"),
        ttft_ms=completions[0].ttft_ms,
        attempts=sum(c.attempts for c in completions),
    )


async def replay_turn(call: Call, request: ChatRequest, turn: Turn, max_rounds: int) -> Replay:
    """Ask the model for the turn, answering its tool calls from the recording, round after round."""
    defined = tool_names(request.tools)
    messages = list(request.messages)
    made: list[ToolCall] = []
    done: list[Completion] = []
    for round_no in range(1, max_rounds + 1):
        completion = await call(ChatRequest(messages, request.params, request.tools, request.item))
        done.append(completion)
        if not completion.ok:
            return Replay(_summed(done), made, round_no, "error")
        calls = tool_calls(completion.tool_calls)
        if not calls:
            return Replay(_summed(done), made, round_no, "answered")
        made.extend(calls)
        wire = [c.wire(f"call_{round_no}_{i}") for i, c in enumerate(calls)]
        answers: list[dict[str, Any]] = []
        for c, sent in zip(calls, wire, strict=True):
            if c.name not in defined:
                unknown = f"'{c.name}' is not one of the request's tools ({', '.join(defined) or 'none'})"
                return Replay(_summed(done), made, round_no, "unknown_tool", Divergence(round_no, c, unknown))
            result, why = turn.result_for(c)
            if why is not None:
                return Replay(_summed(done), made, round_no, "tool_divergence", Divergence(round_no, c, why))
            content = result if isinstance(result, (str, list)) else json.dumps(result, ensure_ascii=False)
            answers.append({"role": "tool", "tool_call_id": sent["id"], "content": content})
        messages = [*messages, {"role": "assistant", "content": completion.text or None, "tool_calls": wire}, *answers]
    return Replay(_summed(done), made, max_rounds, "max_tool_rounds")
