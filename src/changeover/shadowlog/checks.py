"""Deterministic checks on one answer or a pair of answers: refusal, format, equivalence.

Cheap and local, so the gateway's writer and the rollout controller can run them
on every answer. Refusals use the judges' phrase check (``judges.checks.refused``)
so offline evaluation and live traffic agree.
"""

from __future__ import annotations

import json
import re
from difflib import SequenceMatcher

from changeover.judges.checks import refused

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)
_WORD = re.compile(r"\w+")


def is_refusal(text: str | None) -> bool:
    """Whether the answer declines the request: the judges' phrase check, one definition of a
    refusal for offline evaluation and live traffic."""
    return bool(text) and refused(text)


def _is_json(text: str) -> bool:
    text = text.strip()
    if not text or text[0] not in "[{":
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def answer_format(text: str | None) -> str:
    """``empty``, ``json``, ``fenced_json`` (JSON inside a Markdown code fence), ``fenced`` or ``text``."""
    if text is None or not text.strip():
        return "empty"
    if _is_json(text):
        return "json"
    fenced = _FENCE.match(text)
    if fenced:
        return "fenced_json" if _is_json(fenced.group(1)) else "fenced"
    return "text"


def format_drift(incumbent: str | None, candidate: str | None) -> bool:
    """The candidate's answer has a different shape where the shape matters (JSON vs fenced vs prose)."""
    a, b = answer_format(incumbent), answer_format(candidate)
    structured = {"json", "fenced_json"}
    return a != b and (a in structured or b in structured)


def _unfenced(text: str) -> str:
    fenced = _FENCE.match(text)
    return fenced.group(1) if fenced else text


def similarity(a: str | None, b: str | None) -> float:
    """Word-sequence similarity in [0, 1]; equal JSON documents score 1 whatever their layout."""
    if not a or not b:
        return 1.0 if not a and not b else 0.0
    a2, b2 = _unfenced(a).strip(), _unfenced(b).strip()
    if _is_json(a2) and _is_json(b2):
        return 1.0 if json.loads(a2) == json.loads(b2) else 0.5
    wa, wb = _WORD.findall(a2.lower()), _WORD.findall(b2.lower())
    if not wa or not wb:
        return 1.0 if wa == wb else 0.0
    return SequenceMatcher(None, wa, wb, autojunk=False).ratio()


def equivalent(a: str | None, b: str | None, threshold: float = 0.6) -> bool:
    """The deterministic stand-in for semantic equivalence: same refusal behaviour and similar words."""
    if is_refusal(a) != is_refusal(b):
        return False
    return similarity(a, b) >= threshold
