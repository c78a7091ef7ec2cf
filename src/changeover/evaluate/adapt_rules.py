"""The ``rules`` proposer of ``prompts adapt``: each adaptation pattern applied as a fixed rewrite, no model call.

A proposer model is one more model to pay for and to trust, and a small one
rarely writes a usable prompt. ``--proposer rules`` rewrites the variant
mechanically instead, from the failures of the candidate and what the
incumbent answered, ONE pattern per proposal (``changeover.prompts.patterns``):

- ``few_shot``: an example answer the prompt shows inside a markdown code fence
  whose content is JSON is unwrapped to the bare JSON, so each example shows
  exactly the expected reply (a new model copies the fences of its examples);
- ``output_format``: when the incumbent answered bare JSON, the prompt ends
  with a positive constraint on the reply's shape ("Reply with the JSON object
  only: start with { and end with }..."); it names the wanted shape rather
  than the unwanted one, since naming code fences can make a small model
  write them;
- ``instruction_specificity``: the reasons the failing answers were rejected
  (the checks' notes) become an explicit rule;
- ``instruction_order``: the first instruction about the reply's format moves
  to the front of the system prompt and is repeated at its end.

A pattern with nothing to rewrite (no fenced example, an incumbent that does
not answer JSON, ...) gives no proposal and says why. The rewrites are
deterministic, so a rerun proposes the same variants (and calls nothing).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from changeover.judges.checks import strict_json
from changeover.prompts.patterns import Failure
from changeover.prompts.registry import PromptVariant

RULES = "rules"
"""The proposer name that selects these rewrites (unless a model of ``models:`` has that name)."""

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n(.*?)\n?[ \t]*```", re.S)
_FORMAT_WORDS = re.compile(r"\b(json|format|schema|markdown|reply|answer|respond|output)\b", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")

REJECTED_RULE = "Replies rejected before were:"

Rewrite = Callable[[PromptVariant, list[Failure]], tuple[PromptVariant | None, str]]


def propose(parent: PromptVariant, pattern: str, failures: list[Failure]) -> tuple[PromptVariant | None, str]:
    """The variant ``pattern`` makes of ``parent`` (None when it has nothing to change) and what it did."""
    variant, note = REWRITES[pattern](parent, failures)
    if variant is None or (variant.system, variant.template) == (parent.system, parent.template):
        return None, f"rules: {note}"
    return variant.model_copy(update={"version": 1}), f"rules: {note}"


def unfence_examples(parent: PromptVariant, _failures: list[Failure]) -> tuple[PromptVariant | None, str]:
    """``few_shot``: every fenced block of JSON in the system prompt and template becomes the bare JSON."""
    count = 0

    def bare(match: re.Match[str]) -> str:
        nonlocal count
        body = match.group(1).strip()
        ok, _ = strict_json(body)
        if not ok:
            return match.group(0)
        count += 1
        return body

    system = _FENCE.sub(bare, parent.system) if parent.system else parent.system
    template = _FENCE.sub(bare, parent.template) if parent.template else parent.template
    if not count:
        return None, "no example answer in a code fence to unwrap"
    return parent.model_copy(update={"system": system, "template": template}), (
        f"unwrapped {count} fenced JSON example(s) to bare JSON"
    )


def json_only(parent: PromptVariant, failures: list[Failure]) -> tuple[PromptVariant | None, str]:
    """``output_format``: the reply's shape, as the incumbent answers it (bare JSON), stated at the end."""
    shapes = Counter(_json_shape(f.incumbent_response) for f in failures if f.incumbent_response)
    shape, seen = shapes.most_common(1)[0] if shapes else (None, 0)
    if shape is None or seen * 2 < sum(shapes.values()):
        return None, "the incumbent's answers to the failing items are not bare JSON; no format to state"
    opening, closing = ("{", "}") if shape == "object" else ("[", "]")
    rule = (
        f"Reply with the JSON {shape} only: start your reply with {opening} and end it with {closing}, "
        "with nothing before or after it."
    )
    if rule in (parent.system or "") + (parent.template or ""):
        return None, "the output-format constraint is already there"
    return _append(parent, rule), f"stated the output format (a bare JSON {shape})"


def rejected_as_rule(parent: PromptVariant, failures: list[Failure]) -> tuple[PromptVariant | None, str]:
    """``instruction_specificity``: what the failing answers got wrong, as one explicit rule."""
    reasons = Counter(f.why for f in failures if f.why and not f.why.startswith("error:"))
    if not reasons:
        return None, "no rejected answer to learn a rule from"
    named = "; ".join(why for why, _ in reasons.most_common(3))
    if REJECTED_RULE in (parent.system or "") + (parent.template or ""):
        return None, "a rule from rejected answers is already there"
    return _append(parent, f"{REJECTED_RULE} {named}. Your reply must avoid this."), (
        f"made a rule of {len(reasons)} rejection reason(s)"
    )


def format_first(parent: PromptVariant, _failures: list[Failure]) -> tuple[PromptVariant | None, str]:
    """``instruction_order``: the first sentence about the reply's format first, and again at the end."""
    if not parent.system:
        return None, "no system prompt to reorder"
    head, sep, rest = parent.system.partition("\n\n")
    sentences = _SENTENCE.split(head.strip())
    found = next((i for i, s in enumerate(sentences) if _FORMAT_WORDS.search(s)), None)
    if found is None:
        return None, "no instruction about the reply's format in the first paragraph"
    rule = sentences[found]
    if found == 0 and parent.system.rstrip().endswith(rule):
        return None, "the format instruction is already first and last"
    others = " ".join(s for i, s in enumerate(sentences) if i != found)
    body = "\n\n".join(p for p in (others, rest if sep else "") if p)
    system = "\n\n".join(p for p in (rule, body, rule) if p)
    return parent.model_copy(update={"system": system}), "moved the format instruction first, repeated it last"


def _json_shape(text: str) -> str | None:
    ok, value = strict_json(text)
    if not ok:
        return None
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else None


def _append(parent: PromptVariant, rule: str) -> PromptVariant:
    """``rule`` as the last paragraph of the system prompt (of the template when there is no system prompt)."""
    if parent.system or not parent.template:
        return parent.model_copy(update={"system": f"{(parent.system or '').rstrip()}\n\n{rule}".lstrip()})
    return parent.model_copy(update={"template": f"{parent.template.rstrip()}\n\n{rule}"})


REWRITES: dict[str, Rewrite] = {
    "output_format": json_only,
    "instruction_specificity": rejected_as_rule,
    "few_shot": unfence_examples,
    "instruction_order": format_first,
}
