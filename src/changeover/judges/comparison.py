"""The pairwise comparison judge: is the candidate's answer equivalent to the incumbent's, better, worse or different?

An LLM judge with the built-in ``comparison`` rubric (``judges.rubrics.COMPARISON``),
declared like any other in the spec's ``judges:`` section::

    judges:
      agreement: {kind: llm, model: judge-model, rubric: comparison}

The judge sees the two answers as A and B, in an order decided per item by a
hash (position bias averages out), and answers EQUIVALENT, A_BETTER, B_BETTER or
DIFFERENT; the verdict is turned into the candidate's side: ``equivalent``,
``better``, ``worse`` or ``different`` (``Comparison.label``). Its signal value
is 1 for equivalent or better (the candidate's answer can replace the
incumbent's) and 0 for worse or different, so ``assess`` may use it as a
dimension and the ``semantic_equivalence`` trigger reads it as a share.

The verdict is read strictly: a JSON object, a tag, a ``Verdict: X`` line or the
bare label; a label merely standing somewhere in prose ("not EQUIVALENT at all")
is not a verdict. An unreadable answer is asked again (``retries``), then the
comparison is unscorable (value and label None), never silently "equivalent".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from changeover.judges.base import Case, Verdict
from changeover.judges.llm import LLMJudge, _coin
from changeover.judges.parse import Scale, parse_verdict

RUBRIC = "comparison"
CLASSES = ("equivalent", "better", "worse", "different")
"""The candidate's answer against the incumbent's, from the user's side."""
ACCEPTABLE = frozenset({"equivalent", "better"})
"""The classes the ``semantic_equivalence`` trigger counts as keeping the incumbent's quality."""
_LOOSE = ("word",)  # parse_verdict's readings that only found a label word in prose


@dataclass(frozen=True, slots=True)
class Comparison(Verdict):
    """A comparison verdict with its class (None: the judge gave no readable verdict)."""

    label: str | None = None


def candidate_class(value: int, candidate_first: bool) -> str:
    """The rubric's verdict (EQUIVALENT 0, A_BETTER 1, B_BETTER 2, DIFFERENT 3) on the candidate's side."""
    if value == 0:
        return "equivalent"
    if value == 3:
        return "different"
    a_better = value == 1
    return "better" if a_better == candidate_first else "worse"


def parse_strict(text: str | None, scale: Scale) -> tuple[int | None, str]:
    """``parse_verdict`` without its last resort (a label word anywhere in prose): (value, how) or (None, why)."""
    value, how = parse_verdict(text, scale)
    if value is not None and how in _LOOSE:
        excerpt = (text or "").strip()[:80]
        return None, f"no explicit verdict ({scale.describe()}), only a label word in prose: {excerpt!r}"
    return value, how


@dataclass
class ComparisonJudge(LLMJudge):
    """The ``comparison`` rubric's judge; ``score`` gives a ``Comparison`` (its ``label`` is the class)."""

    async def score(self, case: Case) -> Verdict:
        if case.response is None:
            return Comparison(None, "no response to judge")
        if case.is_incumbent:
            return Verdict(1, "the incumbent compared with itself")
        if case.incumbent_response is None:
            return Comparison(None, "no incumbent answer to compare with")
        candidate_first = _coin(case.item)
        a, b = (case.response, case.incumbent_response) if candidate_first else (case.incumbent_response, case.response)
        fields = {
            "prompt": case.prompt,
            "response": case.response,
            "style_guide": self.style_guide,
            "reference": case.reference or "",
            "response_a": a,
            "response_b": b,
        }
        value, note = await self._ask(self.rubric, fields, case)
        if value is None:
            return Comparison(None, note)
        label = candidate_class(value, candidate_first)
        return Comparison(int(label in ACCEPTABLE), f"{label}: {note}", label)

    def _parse(self, text: str | None, scale: Scale) -> tuple[int | None, str]:
        return parse_strict(text, scale)


def comparison_signal(configs: Mapping[str, Any]) -> str | None:
    """The signal of the ``judges:`` entry with the comparison rubric (None: none is declared)."""
    return next((s for s, c in configs.items() if c.kind == "llm" and c.rubric == RUBRIC), None)
