"""``changeover prompts audit``: which prompts to check first when the model changes.

Prompts with heavy format requirements (JSON schemas, extraction templates,
tool-use instructions, strict output formats) are where a new model drifts
first (extra prose, code fences, renamed fields), so they are flagged and
listed first. Token counts are approximate (words and punctuation marks,
which tracks BPE counts within ~20% for English) and given per model variant.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from changeover.prompts.registry import Registry

_TOKEN = re.compile(r"\w+|[^\w\s]", re.U)
HEAVY_FORMAT = {
    "JSON output": re.compile(r"\bjson\b", re.I),
    "JSON schema": re.compile(
        r"\bschema\b|\"type\"\s*:\s*\"(object|array|string)\"|"
        r"\brequired\b.*\bfields?\b",
        re.I,
    ),
    "extraction template": re.compile(r"\bextract\b|\bfill in\b|\{\{\s*\w+\s*\}\}|<\w+>\s*</\w+>", re.I),
    "tool use": re.compile(r"\btools?\b|\bfunction[ _]call|\bcall the\b.*\bfunction\b", re.I),
    "strict format": re.compile(
        r"\brespond only\b|\bonly (return|output|answer)\b|\bexactly\b|"
        r"\bno (prose|explanation|markdown)\b|\bformat\s*:|\byaml\b|\bcsv\b|"
        r"\bxml\b|markdown table",
        re.I,
    ),
}


def count_tokens(text: str) -> int:
    """Approximate token count: words and punctuation marks."""
    return len(_TOKEN.findall(text))


@dataclass
class VariantAudit:
    prompt: str
    variant: str
    version: str
    tokens: int
    heavy: list[str] = field(default_factory=list)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def audit_registry(registry: Registry) -> list[VariantAudit]:
    """One row per (prompt, variant); prompts with heavy format requirements first."""
    rows: list[VariantAudit] = []
    for prompt in registry.prompts.values():
        for name, variant in prompt.variants.items():
            text = "\n".join(filter(None, [variant.system, variant.template]))
            extra = str(variant.tools) if variant.tools else ""
            heavy = [label for label, pattern in HEAVY_FORMAT.items() if pattern.search(text)]
            if variant.tools and "tool use" not in heavy:
                heavy.append("tool use")
            if "response_format" in variant.params and "JSON output" not in heavy:
                heavy.append("JSON output")
            rows.append(
                VariantAudit(
                    prompt.id,
                    name,
                    str(variant.version),
                    count_tokens(text) + count_tokens(extra),
                    heavy,
                    prompt.description,
                )
            )
    heavy_prompts = {r.prompt for r in rows if r.heavy}
    rows.sort(key=lambda r: (r.prompt not in heavy_prompts, r.prompt, r.variant != "default", r.variant))
    return rows
