"""What the gateway reads from a request before routing: its type (segment), its sticky key, and
whether it should be refused (what the judges' refusal check needs).

The request type comes from a header, a body field or the spec's classifier
rules, in that order; the sticky key from the first of the rollout's
``stickiness`` sources (``header:NAME`` or ``field:dotted.path``) that is present.
Values are returned whole: one longer than the log holds is refused by the
gateway with a 400 (``shadow.limits``), never cut short silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from changeover.errors import SpecError
from changeover.shadow.config import JudgeSettings, RequestTypes
from changeover.shadowlog.requests import get_field, last_user_message


class RequestTyper:
    def __init__(self, config: RequestTypes):
        self.header = config.header.lower() if config.header else None
        self.field = config.field
        self.rules = [(re.compile(r.pattern, re.IGNORECASE), r.type) for r in config.rules]
        self.default = config.default

    def __call__(self, payload: dict[str, Any] | None, headers: Mapping[str, str]) -> str:
        if self.header:
            value = headers.get(self.header)
            if value:
                return value
        if self.field:
            value = get_field(payload, self.field)
            if isinstance(value, str) and value:
                return value
        if self.rules:
            text = last_user_message(payload)
            for pattern, kind in self.rules:
                if pattern.search(text):
                    return kind
        return self.default


class StickyKey:
    def __init__(self, sources: list[str]):
        self.sources: list[tuple[str, str]] = []
        for i, source in enumerate(sources):
            kind, _, name = source.partition(":")
            if kind not in ("header", "field") or not name:
                raise SpecError(
                    f"field 'rollout.stickiness.{i}': expected 'header:NAME' or 'field:PATH', got {source!r}"
                )
            self.sources.append((kind, name.lower() if kind == "header" else name))

    def __call__(self, payload: dict[str, Any] | None, headers: Mapping[str, str]) -> str | None:
        for kind, name in self.sources:
            value = headers.get(name) if kind == "header" else get_field(payload, name)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return str(value)
        return None


TRUE = ("1", "true", "yes")
FALSE = ("0", "false", "no")


class ExpectRefusal:
    """Whether a request should be refused: the header (``true`` / ``false``) when sent, else True for
    the request types ``shadow.judge.expect_refusal`` names, else None (the judge's own default)."""

    def __init__(self, config: JudgeSettings):
        self.header = config.expect_refusal_header.lower()
        self.types = frozenset(config.expect_refusal)

    def __call__(self, request_type: str, headers: Mapping[str, str]) -> bool | None:
        value = (headers.get(self.header) or "").strip().lower()
        if value in TRUE:
            return True
        if value in FALSE:
            return False
        return True if request_type in self.types else None
