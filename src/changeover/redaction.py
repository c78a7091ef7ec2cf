"""PII redaction before anything is written: regex rules from the spec, applied to every string.

Shared by what logs live traffic (the gateway's ``shadow.redact``) and what imports logged
traffic (``changeover traffic import``, the spec's ``redaction:``), so one set of rules covers
both. Request headers are never part of what is written (keys and Authorization stay in memory
for the upstream call only); ``Redactor.value`` also drops body fields that carry credentials,
for clients that put them there.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

__all__ = ["SECRET_KEYS", "Redaction", "Redactor", "Regex"]

SECRET_KEYS = frozenset({"api_key", "apikey", "authorization", "password", "secret", "token", "access_token"})
"""Keys of a JSON object whose values are credentials: dropped, whatever the rules."""


def _compiles(v: str) -> str:
    try:
        re.compile(v)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return v


Regex = Annotated[str, AfterValidator(_compiles)]
"""A string that must compile as a Python regular expression."""


class Redaction(BaseModel):
    """A PII rule applied to the request and answers before they are written."""

    model_config = ConfigDict(extra="forbid")

    pattern: Regex
    replace: str = "[REDACTED]"


class Redactor:
    """Applies redaction rules, in order, to text and to every string inside a JSON-like value."""

    def __init__(self, rules: list[Redaction]):
        self.rules = [(re.compile(r.pattern), r.replace) for r in rules]

    def text(self, value: str | None) -> str | None:
        if value is None or not self.rules:
            return value
        for pattern, replace in self.rules:
            value = pattern.sub(replace, value)
        return value

    def value(self, obj: Any, drop_secrets: bool = True) -> Any:
        """Redact every string inside a JSON-like value (a new object; the input is not changed).

        ``drop_secrets``: also drop the keys that carry credentials (``SECRET_KEYS``); off for values
        whose keys are names, not data - a tool's JSON schema with a ``token`` property keeps it.
        """
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {
                k: self.value(v, drop_secrets)
                for k, v in obj.items()
                if not (drop_secrets and str(k).lower() in SECRET_KEYS)
            }
        if isinstance(obj, list):
            return [self.value(v, drop_secrets) for v in obj]
        return obj
