"""Decide whether one string literal or config value is a model id, and which registry rows it names.

A whole value must be the id: ``"gpt-4-0314"`` matches, ``"use gpt-4-0314 here"``
does not. Routing prefixes the SDKs and gateways add are peeled first:
``openai/gpt-4-0314`` (LiteLLM), ``models/gemini-1.5-pro-002`` (Gemini API),
``publishers/google/models/...`` (Vertex), ``us.anthropic.claude-...`` (Bedrock
cross-region inference) and ``claude-3-opus@20240229`` (Vertex's version
separator). Strings that look like a model of a known family but are in no
registry row are still reported, as "not in registry".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from changeover.scan.registry import Lifecycle, Registry

_BEDROCK_REGION = re.compile(r"^(us|eu|apac|us-gov|global)\.(?=[a-z0-9-]+\.)")
_ID_CHARS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{1,120}$")
_BEDROCK_VENDOR = re.compile(r"^(anthropic|meta|mistral|cohere|amazon|ai21)\.")
_FILE_SUFFIX = re.compile(
    r"\.(bin|gguf|ggml|onnx|safetensors|pt|pth|json|jsonl|ya?ml|txt|py|md|csv|log)$", re.IGNORECASE
)

# families whose ids are distinctive enough to report when the registry does not know them
_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "openai",
        re.compile(r"^(gpt-[0-9][a-z0-9.:-]*|o[1-9](-(mini|pro|preview))?(-\d{4}-\d{2}-\d{2})?|text-davinci-\d{3})$"),
    ),
    ("anthropic", re.compile(r"^claude-(\d|instant|opus|sonnet|haiku)[a-z0-9.:-]*$")),
    ("google", re.compile(r"^(gemini-\d[a-z0-9.:-]*|(text|chat|code|codechat)-bison(-32k)?(@\d+|-\d+)?)$")),
    ("mistral", re.compile(r"^(open-)?(mistral|mixtral|codestral|ministral|pixtral)-[a-z0-9.:-]*\d[a-z0-9.:-]*$")),
    ("meta", re.compile(r"^(meta-)?llama-?\d[a-z0-9.:-]*$", re.IGNORECASE)),
    ("cohere", re.compile(r"^command-(r|r-plus|a|light|nightly)(-[a-z0-9-]+)?$")),
)


@dataclass(frozen=True, slots=True)
class Match:
    """What one value names: registry rows, or an id of a known family the registry lacks."""

    text: str  # the id as written (after trimming)
    rows: tuple[Lifecycle, ...]
    family: str | None = None  # set when ``rows`` is empty


def _spellings(value: str) -> list[str]:
    """The value, then the value without routing prefixes and version separators.

    Case is kept: providers' ids are lower case, and ``"O3"`` (a compiler flag) is not ``o3``.
    """
    v = value.strip()
    out = [v]
    if "/" in v:
        out.append(v.rsplit("/", 1)[1])
    for s in list(out):
        bare = _BEDROCK_REGION.sub("", s)
        if bare != s:
            out.append(bare)
    for s in list(out):
        if "@" in s:
            name, _, version = s.partition("@")
            out += [f"{name}-{version}", name] if version != "latest" else [name]
    return list(dict.fromkeys(out))


# a routing prefix that says which provider serves the id (LiteLLM's and the providers' own)
_PROVIDER_PREFIXES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "models": "google",
    "gemini": "google",
    "publishers": "google-vertex",
    "projects": "google-vertex",
    "vertex_ai": "google-vertex",
    "azure": "azure-openai",
    "bedrock": "aws-bedrock",
    "mistral": "mistral",
    "cohere": "cohere",
    "groq": "groq",
}


def _narrow(rows: tuple[Lifecycle, ...], provider: str | None) -> tuple[Lifecycle, ...]:
    """Keep the rows of the provider a routing prefix names (all rows when none or none match)."""
    if provider is None:
        return rows
    kept = tuple(r for r in rows if r.provider == provider)
    return kept or rows


class Matcher:
    """Exact ids and aliases first (a dict lookup), then row patterns, then the family heuristics."""

    def __init__(self, registry: Registry):
        self.exact: dict[str, list[Lifecycle]] = {}
        self.patterns: list[tuple[re.Pattern[str], Lifecycle]] = []
        for row in registry:
            for name in (row.model, *row.aliases):
                self.exact.setdefault(name, []).append(row)
            for p in row.patterns:
                self.patterns.append((re.compile(p), row))

    def match(self, value: str) -> Match | None:
        text = value.strip()
        if not _ID_CHARS.match(text) or "://" in text or _FILE_SUFFIX.search(text):
            return None
        hint = _PROVIDER_PREFIXES.get(text.split("/", 1)[0].lower()) if "/" in text else None
        for s in _spellings(text):
            exact = self.exact.get(s)
            if exact:
                return Match(text, _narrow(tuple(exact), hint))
        for s in _spellings(text):
            rows = tuple(dict.fromkeys(row for p, row in self.patterns if p.fullmatch(s)))
            if rows:
                return Match(text, _narrow(rows, hint))
        for s in _spellings(text):
            s = _BEDROCK_VENDOR.sub("", s)
            for family, pattern in _FAMILIES:
                if pattern.match(s):
                    return Match(text, (), family)
        return None
