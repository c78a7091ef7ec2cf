"""The report's "Tool calls" section: per candidate, how often it called the incumbent's tools.

Shown only when records carry tool calls (``extra.tool_calls``, written by
evaluate for requests with tools); the shares come from ``judges.tools.tool_agreement``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from changeover.judges.tools import tool_agreement
from changeover.records import Record


def tool_section(records: Iterable[Record], incumbent: str, candidates: Sequence[str]) -> list[dict[str, Any]]:
    """One row per candidate with paired tool calls: pairs and the same / dropped / added / different shares."""
    agreement = tool_agreement(records, incumbent)
    return [{"candidate": c, **agreement[c]} for c in candidates if c in agreement]
