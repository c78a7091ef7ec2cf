"""Deterministic checks: JSON validity and schema, fenced JSON (format drift), length ratio,
refusal phrases, response language. Free, fast, and never unscorable without a reason.

Each check gives 1 when the response is acceptable on its signal, except
``length_ratio``, which gives a score in [0, 1]: min(r, 1/r) with r the
length of the response over the incumbent's (1.0 = same length). The checks
over tool use (``tool_called``, ``tool_arguments``, ...) live in tools.py and
are registered here with the others.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from changeover.judges.base import Case, Verdict, short_sha
from changeover.judges.tools import TOOL_CHECKS

REFUSAL_PHRASES = (
    "i'm sorry",
    "i am sorry",
    "i apologize",
    "i apologise",
    "sorry, but",
    "i cannot",
    "i can't",
    "i can not",
    "i'm not able to",
    "i am not able to",
    "i'm unable",
    "i am unable",
    "i won't",
    "i will not",
    "as an ai",
    "as a language model",
    "i must decline",
    "i'm not comfortable",
    "i am not comfortable",
    "it is not appropriate",
    "it's not appropriate",
    "cannot help with",
    "can't help with",
    "cannot assist",
    "can't assist",
    "not able to provide",
    "against my",
    "i do not feel comfortable",
)
_FENCED = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.S)


def strict_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text.strip())
    except (json.JSONDecodeError, ValueError):
        return False, None


def json_valid(case: Case, _cfg: dict[str, Any]) -> Verdict:
    ok, _ = strict_json(case.response or "")
    return Verdict(int(ok), None if ok else "not valid JSON")


def unfenced_json(case: Case, _cfg: dict[str, Any]) -> Verdict:
    """1 when the response is bare JSON; 0 when it is wrapped in markdown fences (format drift)."""
    text = case.response or ""
    fenced = _FENCED.match(text)
    if fenced:
        inner_ok, _ = strict_json(fenced.group(1))
        return Verdict(0, "JSON wrapped in a markdown code fence" if inner_ok else "fenced, not JSON")
    ok, _ = strict_json(text)
    return Verdict(int(ok), None if ok else "not JSON")


def json_schema(case: Case, cfg: dict[str, Any]) -> Verdict:
    import jsonschema

    ok, value = strict_json(case.response or "")
    if not ok:
        return Verdict(0, "not valid JSON")
    errors = sorted(jsonschema.Draft202012Validator(cfg["schema"]).iter_errors(value), key=str)
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        return Verdict(0, f"schema violation at {where}: {first.message[:120]}")
    return Verdict(1)


def refused(text: str, phrases: tuple[str, ...] = REFUSAL_PHRASES, window: int = 240) -> bool:
    """Does the start of ``text`` contain a refusal phrase? (case-insensitive, curly quotes folded)"""
    head = text[:window].lower().replace("\u2019", "'")
    return any(p in head for p in phrases)


def refusal_phrases(case: Case, cfg: dict[str, Any]) -> Verdict:
    """1 when the model refused exactly when it should have: as the traffic says, else as the
    judge's ``expect_refusal`` says (default: it should not)."""
    if case.response is None:
        return Verdict(None, "no response")
    did = refused(case.response, REFUSAL_PHRASES + tuple(p.lower() for p in cfg.get("phrases") or ()))
    expect = case.expect_refusal if case.expect_refusal is not None else bool(cfg.get("expect_refusal"))
    return Verdict(int(did == expect), "refused" if did else "complied")


def length_ratio(case: Case, _cfg: dict[str, Any]) -> Verdict:
    if case.is_incumbent:
        return Verdict(1.0, "the incumbent itself")
    if not case.incumbent_response or case.response is None:
        return Verdict(None, "no incumbent answer to compare with")
    r = len(case.response) / len(case.incumbent_response)
    return Verdict(round(min(r, 1 / r) if r > 0 else 0.0, 6), f"length ratio {r:.2f}")


def detect_language(text: str) -> str:
    import py3langid

    return str(py3langid.classify(text)[0])


def language(case: Case, cfg: dict[str, Any]) -> Verdict:
    """1 when the response is in the expected language (``language:`` or the request's own)."""
    min_chars = int(cfg.get("min_chars") or 20)
    text = (case.response or "").strip()
    if len(text) < min_chars:
        return Verdict(None, f"response shorter than {min_chars} characters: language unknown")
    expected = cfg.get("language")
    if not expected:
        if len(case.prompt.strip()) < min_chars:
            return Verdict(None, "request too short to tell its language; set judges.<signal>.language")
        expected = detect_language(case.prompt)
    got = detect_language(text)
    return Verdict(int(got == expected), f"{got} (expected {expected})")


CHECKS: dict[str, Callable[[Case, dict[str, Any]], Verdict]] = {
    **TOOL_CHECKS,
    "json_valid": json_valid,
    "fenced_json": unfenced_json,
    "json_schema": json_schema,
    "refusal_phrases": refusal_phrases,
    "length_ratio": length_ratio,
    "language": language,
}


@dataclass
class CheckJudge:
    """A deterministic check as a judge; ``options`` are its settings from the spec."""

    signal: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> dict[str, str]:
        return {"judge": f"check:{self.kind}", "rubric_sha": short_sha([self.kind, self.options])}

    async def score(self, case: Case) -> Verdict:
        if case.response is None:
            return Verdict(None, "no response to check")
        return CHECKS[self.kind](case, self.options)
