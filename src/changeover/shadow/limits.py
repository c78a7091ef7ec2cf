"""Bounds on what a client sends the gateway: body size, JSON nesting, the length of ids and names.

A body over the limit is refused with 413 before it is parsed, mirrored or
stored (a 30 MiB chat request was once accepted and logged: +63 MB in the
store); JSON nested deeper than ``MAX_JSON_DEPTH`` is a 400 (Python's parser
would raise ``RecursionError``, a 500); a sticky key or request type longer
than its column is a 400 naming where it came from, never a failed log batch.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from changeover.jsonlimits import TooDeep, depth  # re-exported: the gateway reads limits.TooDeep
from changeover.jsonlimits import loads as bounded_json

__all__ = ["BodyTooLarge", "TooDeep", "depth", "loads", "read_capped", "too_long", "parse_size"]

MAX_JSON_DEPTH = 64  # a chat request with tools and JSON schemas nests ~10 deep
MAX_SUBJECT = 256  # shadow_log.subject
MAX_REQUEST_TYPE = 128  # shadow_log.request_type

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_FACTOR = {"": 1, "b": 1, "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024, "m": 10**6, "mb": 10**6}
_FACTOR |= {"mi": 1 << 20, "mib": 1 << 20, "g": 10**9, "gb": 10**9, "gi": 1 << 30, "gib": 1 << 30}


def parse_size(value: object) -> int:
    """``"1MiB"``, ``"512 KiB"``, ``"2MB"`` or a number of bytes -> bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like '1MiB' or '512KiB', got {value!r}")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError("a size must be positive")
        return int(value)
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"expected a size like '1MiB' or '512KiB', got {value!r}")
    size = int(float(match.group(1)) * _FACTOR[(match.group(2) or "").lower()])
    if size <= 0:
        raise ValueError("a size must be positive")
    return size


class BodyTooLarge(Exception):
    """The request body is over the limit (it was not read further)."""


async def read_capped(request: Request, limit: int) -> bytes:
    """The whole body, or ``BodyTooLarge`` as soon as it passes ``limit`` bytes
    (a ``Content-Length`` over the limit is refused before reading anything)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge()
    return bytes(body)


def loads(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that raises ``TooDeep`` (a ``ValueError``) instead of nesting without bound."""
    return bounded_json(raw, max_depth)


def too_long(value: str | None, limit: int) -> bool:
    return value is not None and len(value) > limit
