"""An ``Exchange`` is one model's answer to one request, as the request path hands it to the writer.

It carries raw bytes and timings only; parsing, refusal detection, redaction and
costing happen later in the background writer (``shadow.rows``). Fields are
named at construction (``kw_only``): fifteen positional values were one swap away
from logging a latency as a status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from changeover.providers.deprecation import DeprecationNotice


@dataclass(slots=True, kw_only=True)
class Exchange:
    request_id: str
    at: datetime
    model: str
    role: str  # served | mirror | fallback
    request_type: str
    subject: str | None
    stage: int
    weight: int
    stream: bool
    payload: dict[str, Any] | None  # the parsed request body (never headers)
    body: bytes | None  # the upstream's answer: JSON, or the whole SSE stream
    status: int | None
    error: str | None
    latency_ms: float
    ttft_ms: float | None = None
    prompt: str | None = None  # the registry variant applied to what was sent (``prompt@variant:vN``)
    deprecation: DeprecationNotice | None = None  # the upstream announced a deprecation on this answer
