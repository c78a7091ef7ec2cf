"""The first request of every (interaction, arm): the rendered prompt variant, cut at the evaluated turn.

Rendering everything before any call means a bad template fails the run up
front; the compatibility check sends exactly these requests, so what it
stores in the call cache is reused by the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from changeover.evaluate.conversation import Turn, split_turn
from changeover.prompts import Arm, Registry
from changeover.prompts.sampling import Sampled
from changeover.providers import ChatRequest


@dataclass(frozen=True)
class Planned:
    """One arm's request for one interaction, the turn it replays and the prompt version."""

    arm: Arm
    request: ChatRequest
    turn: Turn
    version: str


def plan_requests(
    sampled: list[Sampled], arms: list[Arm], registry: Registry, params: dict[str, Any]
) -> dict[str, list[Planned]]:
    """Per item, one ``Planned`` per arm (in the arms' order); ``params`` sit under the logged ones."""
    out: dict[str, list[Planned]] = {}
    for s in sampled:
        inter = s.interaction
        row = []
        for arm in arms:
            rendered = registry.render(inter, arm.prompt_for)
            turn = split_turn(rendered.messages)
            request = ChatRequest(turn.context, {**params, **rendered.params}, rendered.tools, inter.item)
            row.append(Planned(arm, request, turn, rendered.version))
        out[inter.item] = row
    return out
