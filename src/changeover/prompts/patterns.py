"""Prompt adaptation patterns: what a proposer is asked to change, and reading its proposal back.

A new model rarely fails because it is worse at the task; more often the
prompt leans on the old model's habits. The known fixes, one per proposal:

- ``output_format``: an explicit output-format constraint (raw JSON, no code
  fences, no prose around it);
- ``instruction_specificity``: spell out what the old model guessed;
- ``few_shot``: fewer or different examples (a new model may copy them too closely);
- ``instruction_order``: the most important instruction first (or last).

``proposer_request`` builds the request (the parent variant, the failing
examples, ONE pattern); ``parse_proposal`` reads the answer: a JSON object
(bare, fenced or inside prose), ``<system>``/``<template>`` tags, or
``SYSTEM:`` / ``TEMPLATE:`` sections. Anything else is unparseable and the
caller counts it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from changeover.prompts.registry import PromptVariant


@dataclass(frozen=True, slots=True)
class Pattern:
    """One adaptation pattern and the instruction the proposer gets for it."""

    name: str
    title: str
    instruction: str


PATTERNS: dict[str, Pattern] = {
    p.name: p
    for p in (
        Pattern(
            "output_format",
            "explicit output-format constraint",
            "Add an explicit output-format constraint: say exactly what the reply must look like "
            "(for JSON: raw JSON only, no markdown code fences, no text before or after it).",
        ),
        Pattern(
            "instruction_specificity",
            "instruction specificity",
            "Make the instructions more specific: state what the failing answers got wrong as an explicit rule.",
        ),
        Pattern(
            "few_shot",
            "fewer or different few-shot examples",
            "Change the examples: remove examples the new model copies too closely, or add one short example "
            "of exactly the expected reply.",
        ),
        Pattern(
            "instruction_order",
            "instruction order",
            "Reorder the instructions: put the rule the failing answers break first, and repeat it at the end.",
        ),
    )
}
_FORMAT_HINT = re.compile(r"json|fence|format|schema|markdown|not json", re.I)


@dataclass(frozen=True, slots=True)
class Failure:
    """One response of the candidate that failed, or disagreed with the incumbent, on a required dimension."""

    item: str
    dimension: str
    request: str
    response: str
    incumbent_response: str
    why: str


def rank_patterns(failures: list[Failure]) -> list[str]:
    """Patterns in the order to try them: the output-format constraint first when the failures are format ones."""
    names = list(PATTERNS)
    format_failures = sum(bool(_FORMAT_HINT.search(f.why)) for f in failures)
    if failures and format_failures * 2 >= len(failures):
        return names
    return [*names[1:], names[0]]


def proposer_request(
    parent: PromptVariant, pattern: Pattern, failures: list[Failure], max_examples: int = 4
) -> list[dict[str, Any]]:
    """The messages asking for ONE revised variant of ``parent`` along ``pattern``."""
    examples = "\n\n".join(
        f"Example {i + 1} ({f.dimension}: {f.why})\nREQUEST:\n{_cut(f.request)}\n"
        f"NEW MODEL ANSWERED:\n{_cut(f.response)}\nOLD MODEL ANSWERED:\n{_cut(f.incumbent_response)}"
        for i, f in enumerate(failures[:max_examples])
    )
    current = f"SYSTEM PROMPT:\n{parent.system or '(none)'}"
    if parent.template:
        current += f"\n\nUSER TEMPLATE (keep every {{variable}}):\n{parent.template}"
    user = (
        "A prompt written for an old model is now sent to a new model, which fails on these requests.\n\n"
        f"{current}\n\nFAILING EXAMPLES:\n{examples or '(none recorded)'}\n\n"
        f"CHANGE TO MAKE ({pattern.title}): {pattern.instruction}\n\n"
        f'Reply with one JSON object only: {{"system": "{SYSTEM_PLACEHOLDER}"'
        + (f', "template": "{TEMPLATE_PLACEHOLDER}"' if parent.template else "")
        + "}."
    )
    return [
        {"role": "system", "content": "You revise prompts so that a new language model follows them."},
        {"role": "user", "content": user},
    ]


SYSTEM_PLACEHOLDER, TEMPLATE_PLACEHOLDER = "<the complete new system prompt>", "<the user template>"
PLACEHOLDERS = (SYSTEM_PLACEHOLDER, TEMPLATE_PLACEHOLDER)


def parse_proposal(text: str | None, parent: PromptVariant) -> PromptVariant | None:
    """The variant the proposer wrote (parent's fields kept where it said nothing), or None if unreadable."""
    fields = _json_fields(text or "") or _tagged_fields(text or "")
    system = _clean(fields.get("system"))
    template = _clean(fields.get("template"))
    if any(placeholder in (system or "") + (template or "") for placeholder in PLACEHOLDERS):
        return None  # the request's placeholder echoed back (a small model copying the instruction)
    if not system and not template:
        return None
    if (system or parent.system) == parent.system and (template or parent.template) == parent.template:
        return None  # nothing changed: not a proposal
    return parent.model_copy(
        update={"system": system or parent.system, "template": template or parent.template, "version": 1}
    )


def _json_fields(text: str) -> dict[str, Any]:
    """The first JSON object in ``text`` (bare, fenced, or inside prose) with a system / template key."""
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            obj, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            found = {k.lower().replace(" ", "_"): v for k, v in obj.items() if isinstance(k, str)}
            for alias in ("system_prompt", "prompt", "instructions"):
                if alias in found and "system" not in found:
                    found["system"] = found[alias]
            if "system" in found or "template" in found:
                return found
    return {}


_TAG = re.compile(r"<(system|template)>\s*(.*?)\s*</\1>", re.S | re.I)
_SECTION = re.compile(
    r"^\s*(?:new\s+)?(system(?:\s+prompt)?|template)\s*:\s*(.*?)(?=^\s*(?:new\s+)?(?:system(?:\s+prompt)?|template)\s*:|\Z)",
    re.S | re.I | re.M,
)


def _tagged_fields(text: str) -> dict[str, Any]:
    found = {m.group(1).lower(): m.group(2) for m in _TAG.finditer(text)}
    if found:
        return found
    return {
        ("system" if m.group(1).lower().startswith("system") else "template"): m.group(2)
        for m in _SECTION.finditer(text)
    }


def _clean(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip().strip('"').strip()
    return value or None


def _cut(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"
