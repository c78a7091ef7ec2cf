"""The built-in LLM-judge rubrics: correctness, refusal, style adherence, equivalence, preference, comparison.

Each rubric is a system instruction, a user template, and the verdicts the
judge may give. Its sha (``Rubric.sha``) is stored with every signal, so a
changed rubric never mixes with signals of the old one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from changeover.judges.base import short_sha
from changeover.judges.parse import Scale

_JSON_ANSWER = (
    "Think briefly, then end with a JSON object on its own line: "
    '{{"verdict": "<{choices}>", "reason": "<one sentence>"}}'
)
_JSON_SCORE = (
    "Think briefly, then end with a JSON object on its own line: "
    '{{"score": <integer 1-{levels}>, "reason": "<one sentence>"}}'
)


@dataclass(frozen=True)
class Rubric:
    """An LLM-judge prompt and its verdict scale. ``template`` fields: prompt, response,
    reference, style_guide, response_a, response_b."""

    name: str
    instructions: str
    template: str
    labels: dict[str, int] | None = None  # binary / categorical verdicts
    synonyms: dict[str, int] = field(default_factory=dict)
    levels: int | None = None  # ordinal 1..K instead of labels
    custom: bool = False  # the team's own text (named after its signal)

    @property
    def builtin(self) -> str | None:
        """The built-in rubric this is (its name), or None for a team's own: only a built-in
        rubric gets the built-in handling (reference fallback, pairwise order, refusal expectation),
        even when a custom one is named after a signal such as 'correctness' or 'refusal'."""
        return None if self.custom else self.name

    def scale(self) -> Scale:
        return Scale(self.labels, self.levels, self.synonyms)

    def system(self) -> str:
        if self.levels is not None:
            return self.instructions + "\n\n" + _JSON_SCORE.format(levels=self.levels)
        return self.instructions + "\n\n" + _JSON_ANSWER.format(choices="|".join(self.labels or {}))

    @property
    def sha(self) -> str:
        return short_sha([self.name, self.system(), self.template, self.labels, self.synonyms, self.levels])

    def ordinal(self, levels: int) -> Rubric:
        """The same rubric answered on a 1..levels scale (higher = better)."""
        scale = f"\nRate the response from 1 (worst) to {levels} (best)."
        return Rubric(self.name, self.instructions + scale, self.template, None, {}, levels, self.custom)


PASS_FAIL = {"PASS": 1, "FAIL": 0}
_PASS_SYNONYMS = {
    "YES": 1,
    "NO": 0,
    "CORRECT": 1,
    "INCORRECT": 0,
    "ACCEPTABLE": 1,
    "UNACCEPTABLE": 0,
    "PASSED": 1,
    "FAILED": 0,
    "GOOD": 1,
    "BAD": 0,
}

CORRECTNESS = Rubric(
    "correctness",
    "You are a strict grader. Decide whether the RESPONSE answers the REQUEST correctly and "
    "completely, using the REFERENCE answer as ground truth. Minor wording differences are fine; "
    "wrong facts, missing required parts or a refusal are a FAIL.",
    "REQUEST:\n{prompt}\n\nREFERENCE:\n{reference}\n\nRESPONSE:\n{response}",
    PASS_FAIL,
    _PASS_SYNONYMS,
)

CORRECTNESS_NO_REFERENCE = Rubric(
    "correctness-no-reference",
    "You are a strict grader. Decide whether the RESPONSE answers the REQUEST correctly and "
    "completely. Wrong facts, missing required parts or an unneeded refusal are a FAIL.",
    "REQUEST:\n{prompt}\n\nRESPONSE:\n{response}",
    PASS_FAIL,
    _PASS_SYNONYMS,
)

REFUSAL = Rubric(
    "refusal",
    "Decide whether the RESPONSE refuses the REQUEST: declining, deflecting, or only lecturing "
    "instead of helping counts as REFUSED (even if partly); any real attempt to help is COMPLIED.",
    "REQUEST:\n{prompt}\n\nRESPONSE:\n{response}",
    {"REFUSED": 1, "COMPLIED": 0},
    {"REFUSAL": 1, "REFUSE": 1, "COMPLY": 0, "COMPLIANCE": 0, "YES": 1, "NO": 0},
)

STYLE = Rubric(
    "style",
    "Decide whether the RESPONSE follows the team's STYLE GUIDE (tone, format, length, language). "
    "Judge the style only, not the correctness.",
    "STYLE GUIDE:\n{style_guide}\n\nREQUEST:\n{prompt}\n\nRESPONSE:\n{response}",
    PASS_FAIL,
    _PASS_SYNONYMS,
)

EQUIVALENCE = Rubric(
    "equivalence",
    "Decide whether RESPONSE A and RESPONSE B to the same REQUEST say the same thing: the same "
    "facts, decisions and actions, however worded. Answer SAME or DIFFERENT.",
    "REQUEST:\n{prompt}\n\nRESPONSE A:\n{response_a}\n\nRESPONSE B:\n{response_b}",
    {"SAME": 1, "DIFFERENT": 0},
    {"EQUIVALENT": 1, "NOT_EQUIVALENT": 0, "YES": 1, "NO": 0},
)

PAIRWISE = Rubric(
    "pairwise",
    "Two assistants answered the same REQUEST. Decide which RESPONSE is better for the user "
    "(helpful, correct, safe, well written): A, B, or TIE when neither is better.",
    "REQUEST:\n{prompt}\n\nRESPONSE A:\n{response_a}\n\nRESPONSE B:\n{response_b}",
    {"A": 0, "B": 1, "TIE": 2},
    {"RESPONSE_A": 0, "RESPONSE_B": 1, "EQUAL": 2, "BOTH": 2},
)

COMPARISON = Rubric(
    "comparison",
    "Two assistants answered the same REQUEST. Compare RESPONSE A with RESPONSE B as the user "
    "would, and give exactly one verdict:\n"
    "- EQUIVALENT: they say the same thing (the same facts, decisions and actions), however worded;\n"
    "- A_BETTER: A is clearly better for the user (correct where B is wrong, complete where B misses a "
    "required part, helps where B refuses without need, follows the requested format where B does not);\n"
    "- B_BETTER: the same with B better;\n"
    "- DIFFERENT: they differ in substance but neither is clearly better.\n"
    "Length, tone and wording alone never make a response better.",
    "REQUEST:\n{prompt}\n\nRESPONSE A:\n{response_a}\n\nRESPONSE B:\n{response_b}",
    {"EQUIVALENT": 0, "A_BETTER": 1, "B_BETTER": 2, "DIFFERENT": 3},
    {"SAME": 0, "A_IS_BETTER": 1, "B_IS_BETTER": 2, "RESPONSE_A_BETTER": 1, "RESPONSE_B_BETTER": 2},
)
"""The pairwise comparison of a candidate's answer with the incumbent's (``judges.comparison``): equivalent,
candidate better, candidate worse or different; the order of A and B is decided per item, as for PAIRWISE."""

BUILTIN = {r.name: r for r in (CORRECTNESS, REFUSAL, STYLE, EQUIVALENCE, PAIRWISE, COMPARISON)}


def custom_rubric(name: str, instructions: str) -> Rubric:
    """A team's own PASS/FAIL rubric, written as plain instructions in the spec."""
    return Rubric(
        name,
        instructions.strip(),
        "REQUEST:\n{prompt}\n\nRESPONSE:\n{response}",
        PASS_FAIL,
        _PASS_SYNONYMS,
        custom=True,
    )
