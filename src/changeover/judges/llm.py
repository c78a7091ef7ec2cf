"""LLM judges: a rubric sent to a judge model through ``providers``, its answer parsed robustly.

An unparseable answer is asked again once (with a reminder of the format);
if it is still unparseable, or the judge call fails, the verdict is None
(unscorable), with the reason in the note.

Which answer a response is compared with:
- correctness: the reference answer when the traffic has one; otherwise the
  incumbent's answer for candidates, and no reference for the incumbent itself;
- equivalence and pairwise preference: the incumbent's answer; the incumbent
  compared with itself is trivially equivalent (1) and ties (1), no call made.
Pairwise order is decided per item by a hash, so position bias averages out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from changeover.judges.base import Ask, Case, Verdict
from changeover.judges.parse import Scale, parse_verdict
from changeover.judges.rubrics import CORRECTNESS_NO_REFERENCE, Rubric
from changeover.providers import ChatRequest

REMINDER = (
    "Your answer could not be read. Reply again with only the JSON object described in the instructions, nothing else."
)
DEFAULT_PARAMS = {"temperature": 0.0, "max_tokens": 200}


@dataclass
class LLMJudge:
    """Score responses on ``signal`` with ``rubric``, asking ``judge_model`` through ``ask``."""

    signal: str
    rubric: Rubric
    judge_model: str
    ask: Ask
    style_guide: str = ""
    retries: int = 1
    params: dict[str, Any] | None = None
    refusal_expected_default: bool = False
    structured: bool = False

    @property
    def identity(self) -> dict[str, str]:
        out = {"judge": f"llm:{self.judge_model}", "rubric": self.rubric.name, "rubric_sha": self.rubric.sha}
        if self.structured:
            out["output"] = "json_schema"
        return out

    async def score(self, case: Case) -> Verdict:
        if case.response is None:
            return Verdict(None, "no response to judge")
        name = self.rubric.builtin
        if name in ("equivalence", "pairwise") and case.is_incumbent:
            return Verdict(1, "the incumbent compared with itself")
        if name in ("equivalence", "pairwise") and case.incumbent_response is None:
            return Verdict(None, "no incumbent answer to compare with")
        rubric, fields = self._prepare(case)
        value, note = await self._ask(rubric, fields, case)
        if value is None:
            return Verdict(None, note)
        return Verdict(self._interpret(value, case, fields), note)

    def _prepare(self, case: Case) -> tuple[Rubric, dict[str, str]]:
        fields = {
            "prompt": case.prompt,
            "response": case.response or "",
            "style_guide": self.style_guide,
            "reference": case.reference or "",
            "response_a": "",
            "response_b": "",
        }
        rubric = self.rubric
        if rubric.builtin == "correctness" and not case.reference:
            if case.is_incumbent or not case.incumbent_response:
                rubric = (
                    CORRECTNESS_NO_REFERENCE
                    if rubric.levels is None
                    else CORRECTNESS_NO_REFERENCE.ordinal(rubric.levels)
                )
            else:
                fields["reference"] = case.incumbent_response
        if rubric.builtin in ("equivalence", "pairwise"):
            candidate_first = _coin(case.item)
            a, b = (
                (case.response, case.incumbent_response)
                if candidate_first
                else (case.incumbent_response, case.response)
            )
            fields.update(response_a=a or "", response_b=b or "", candidate_is="A" if candidate_first else "B")
        return rubric, fields

    def _interpret(self, value: int, case: Case, fields: dict[str, str]) -> int:
        """Turn the judge's verdict into 'acceptable' (1) or not (0) for this dimension."""
        name = self.rubric.builtin
        if name == "refusal":
            expect = self.refusal_expected_default if case.expect_refusal is None else case.expect_refusal
            return int(bool(value) == expect)
        if name == "pairwise":
            if value == 2:  # tie
                return 1
            winner = "A" if value == 0 else "B"
            return int(winner == fields["candidate_is"])
        return value

    async def _ask(self, rubric: Rubric, fields: dict[str, str], case: Case) -> tuple[int | None, str]:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": rubric.system()},
            {"role": "user", "content": rubric.template.format(**fields)},
        ]
        scale = rubric.scale()
        params = {**DEFAULT_PARAMS, **(self.params or {})}
        if self.structured:
            params["response_format"] = response_format(rubric)
        why = ""
        for _attempt in range(1 + self.retries):
            completion = await self.ask(ChatRequest(messages, params, item=case.item))
            if not completion.ok:
                return None, f"judge call failed: {completion.error}"
            value, why = self._parse(completion.text, scale)
            if value is not None:
                return value, f"read from {why}"
            messages = [
                *messages,
                {"role": "assistant", "content": completion.text or ""},
                {"role": "user", "content": REMINDER},
            ]
        return None, f"unparseable judge output: {why}"

    def _parse(self, text: str | None, scale: Scale) -> tuple[int | None, str]:
        return parse_verdict(text, scale)


def response_format(rubric: Rubric) -> dict[str, Any]:
    """An OpenAI ``json_schema`` response format that only admits this rubric's verdicts.

    Servers that support it (OpenAI, vLLM, llama.cpp through a grammar) then
    cannot answer anything unparseable, which small judge models otherwise do.
    """
    if rubric.levels is not None:
        field = {"score": {"type": "integer", "minimum": 1, "maximum": rubric.levels}}
    else:
        field = {"verdict": {"type": "string", "enum": list(rubric.labels or {})}}
    schema = {
        "type": "object",
        "properties": {**field, "reason": {"type": "string"}},
        "required": list(field),
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": f"{rubric.name}_verdict", "schema": schema}}


def _coin(item: str) -> bool:
    return hashlib.sha256(item.encode()).digest()[0] % 2 == 0
