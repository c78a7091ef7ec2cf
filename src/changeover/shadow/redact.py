"""PII redaction before anything is written: regex rules from the spec, applied to every string.

Request headers are never part of what is written (keys and Authorization stay
in memory for the upstream call only); ``strip_secrets`` also drops body fields
that carry credentials, for clients that put them there.
"""

from __future__ import annotations

import re
from typing import Any

from changeover.shadow.config import Redaction

_SECRET_KEYS = {"api_key", "apikey", "authorization", "password", "secret", "token", "access_token"}


class Redactor:
    def __init__(self, rules: list[Redaction]):
        self.rules = [(re.compile(r.pattern), r.replace) for r in rules]

    def text(self, value: str | None) -> str | None:
        if value is None or not self.rules:
            return value
        for pattern, replace in self.rules:
            value = pattern.sub(replace, value)
        return value

    def value(self, obj: Any) -> Any:
        """Redact every string inside a JSON-like value (a new object; the input is not changed)."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: self.value(v) for k, v in obj.items() if str(k).lower() not in _SECRET_KEYS}
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        return obj
