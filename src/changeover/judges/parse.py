"""Read a verdict out of whatever a judge model wrote: JSON, tags, 'Verdict: X' lines, or bare words.

Small and hurried models wrap JSON in code fences, add prose around it,
use tags, or answer with one word. Each form is tried in turn; when nothing
matches, or the text names two different verdicts, the answer is unscorable
(None) with the reason, never a guess.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_KEYS = (
    "verdict",
    "label",
    "answer",
    "result",
    "decision",
    "judgement",
    "judgment",
    "winner",
    "preference",
    "preferred",
    "score",
    "rating",
    "grade",
    "pass",
    "passed",
    "correct",
    "acceptable",
    "refused",
    "same",
    "equivalent",
)
_TAG = re.compile(r"<(verdict|answer|score|rating|label|result)>\s*(.*?)\s*</\1>", re.S | re.I)
_LINE = re.compile(
    r"\b(verdict|answer|score|rating|label|result|decision|grade|winner)\b\**\s*[:=]\s*"
    r"\**\s*\[*\s*\"?([A-Za-z_]+|\d+(?:\.\d+)?)",
    re.I,
)
_BRACKETS = re.compile(r"\[\[\s*([A-Za-z_]+|\d+(?:\.\d+)?)\s*\]\]")
_FRACTION = re.compile(r"\b(\d+(?:\.\d+)?)\s*/\s*(\d+)\b")


class Scale:
    """What a verdict may be: named labels (e.g. PASS -> 1, FAIL -> 0) or levels 1..K."""

    def __init__(
        self, labels: dict[str, int] | None = None, levels: int | None = None, synonyms: dict[str, int] | None = None
    ):
        if (labels is None) == (levels is None):
            raise ValueError("a scale has either labels or levels")
        self.labels = {k.upper(): v for k, v in (labels or {}).items()}
        self.synonyms = {**self.labels, **{k.upper(): v for k, v in (synonyms or {}).items()}}
        self.levels = levels

    def read(self, raw: Any) -> int | None:
        """One extracted token -> value, or None when it is not on this scale."""
        if isinstance(raw, bool):
            if self.levels is not None:
                return None
            return _bool_label(self.labels, raw)
        if isinstance(raw, (int, float)):
            return self._number(float(raw))
        if not isinstance(raw, str):
            return None
        token = raw.strip().strip(".!*\"'`[]()").upper().replace(" ", "_")
        if not token:
            return None
        if re.fullmatch(r"\d+(\.\d+)?", token):
            return self._number(float(token))
        frac = _FRACTION.fullmatch(raw.strip())
        if frac:
            return self._number(float(frac.group(1)))
        if self.levels is not None:
            return None
        if token in self.synonyms:
            return self.synonyms[token]
        if token in ("TRUE", "FALSE"):
            return _bool_label(self.labels, token == "TRUE")
        return None

    def _number(self, x: float) -> int | None:
        if not x.is_integer():
            return None
        n = int(x)
        if self.levels is not None:
            return n if 1 <= n <= self.levels else None
        return n if n in self.labels.values() and set(self.labels.values()) <= {0, 1} else None

    def describe(self) -> str:
        if self.levels is not None:
            return f"an integer from 1 to {self.levels}"
        return " or ".join(self.labels)


def _bool_label(labels: dict[str, int], value: bool) -> int | None:
    values = set(labels.values())
    return int(value) if values <= {0, 1} else None


def _json_objects(text: str) -> list[Any]:
    """JSON values found in the text: fenced blocks, the whole text, then each balanced {...}."""
    found: list[Any] = []
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for cand in candidates:
        try:
            found.append(json.loads(cand.strip()))
        except json.JSONDecodeError:
            pass
    depth, start = 0, -1
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                try:
                    found.append(json.loads(text[start : i + 1]))
                except json.JSONDecodeError:
                    pass
    return found


def _from_json(obj: Any, scale: Scale) -> int | None:
    if isinstance(obj, dict):
        lowered = {str(k).lower(): v for k, v in obj.items()}
        for key in _KEYS:
            if key in lowered:
                value = scale.read(lowered[key])
                if value is not None:
                    return value
        return None
    return scale.read(obj) if isinstance(obj, (str, int, float, bool)) else None


def _words(text: str, scale: Scale) -> set[int]:
    """Values of the primary labels standing as whole words in free text."""
    values = set()
    for label, value in scale.labels.items():
        if re.search(rf"(?<![A-Za-z_]){re.escape(label)}(?![A-Za-z_])", text, re.I):
            values.add(value)
    return values


def _without_json(text: str) -> str:
    """The text with {...} blocks removed: words inside unreadable JSON are not verdicts."""
    previous = None
    while previous != text:
        previous, text = text, re.sub(r"\{[^{}]*\}", " ", text)
    return text


def parse_verdict(text: str | None, scale: Scale) -> tuple[int | None, str]:
    """(value, how it was read) or (None, why not)."""
    if text is None or not text.strip():
        return None, "empty judge output"
    for obj in _json_objects(text):
        value = _from_json(obj, scale)
        if value is not None:
            return value, "json"
    for pattern, how in ((_TAG, "tag"), (_LINE, "line")):
        values = {v for m in pattern.finditer(text) if (v := scale.read(m.group(2))) is not None}
        if len(values) == 1:
            return values.pop(), how
        if len(values) > 1:
            return None, f"conflicting verdicts in {how}s: {sorted(values)}"
    values = {v for m in _BRACKETS.finditer(text) if (v := scale.read(m.group(1))) is not None}
    if len(values) == 1:
        return values.pop(), "brackets"
    whole = scale.read(text)
    if whole is not None:
        return whole, "bare"
    if scale.levels is None:
        values = _words(_without_json(text), scale)
        if len(values) == 1:
            return values.pop(), "word"
        if len(values) > 1:
            return None, "the output names more than one verdict"
    else:
        frac = [v for m in _FRACTION.finditer(text) if (v := scale.read(m.group(0))) is not None]
        if len(set(frac)) == 1:
            return frac[0], "fraction"
    return None, f"no verdict ({scale.describe()}) found in: {text.strip()[:80]!r}"
