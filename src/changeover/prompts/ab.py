"""Arms of an evaluation: which model runs with which prompt variant, and prompt A/B.

Normally each model runs with its own variant (one arm per model). Prompt A/B
runs the 2x2 of {old prompt, adapted prompt} x {old model, new model} for each
candidate, as separate arms named ``<model>+prompt:<whose>``. ``assess`` then
compares every arm with the incumbent on its own prompt, so the prompt's
effect (incumbent+prompt:candidate), the model's effect
(candidate+prompt:incumbent) and both together (candidate) read apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from changeover.config import MigrationSpec


@dataclass(frozen=True, slots=True)
class Arm:
    """``model`` answering with the prompt variant meant for ``prompt_for``."""

    name: str
    model: str
    prompt_for: str


def arm_name(model: str, prompt_for: str) -> str:
    return model if model == prompt_for else f"{model}+prompt:{prompt_for}"


def plan_arms(spec: MigrationSpec, prompt_ab: bool = False) -> list[Arm]:
    """Incumbent arm first. Without A/B: one arm per model; with A/B: the 2x2 per candidate."""
    inc = spec.incumbent
    arms = [Arm(inc, inc, inc)]
    for cand in spec.candidates:
        if prompt_ab:
            arms.append(Arm(arm_name(inc, cand), inc, cand))
            arms.append(Arm(arm_name(cand, inc), cand, inc))
        arms.append(Arm(cand, cand, cand))
    seen: dict[str, Arm] = {}
    for arm in arms:
        seen.setdefault(arm.name, arm)
    return list(seen.values())


def spec_for_arms(spec: MigrationSpec, arms: list[Arm]) -> MigrationSpec:
    """The spec ``assess`` should read: the incumbent arm against every other arm."""
    updated = spec.model_copy(update={"candidates": [a.name for a in arms if a.name != spec.incumbent]})
    updated.path = spec.path
    return updated
