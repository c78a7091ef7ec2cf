"""Errors a user can cause, each naming the file, line or field and what to do.

The CLI prints any ``ChangeoverError`` without a traceback and exits 2.
Anything else escaping to the CLI is a bug in changeover.
"""

from __future__ import annotations


class ChangeoverError(Exception):
    """A problem with the user's input or environment, with a fix in the message."""

    exit_code = 2


class SpecError(ChangeoverError):
    """The migration spec (YAML) is missing, malformed or inconsistent."""


class RecordsError(ChangeoverError):
    """A records file (JSONL, CSV, Parquet) has a bad row, column or value."""


class StoreError(ChangeoverError):
    """The store cannot be opened, or holds data that conflicts with the request."""


class DataError(ChangeoverError):
    """The data are valid row by row but cannot answer the question asked
    (for example: no item answered by both incumbent and candidate)."""


class ProviderError(ChangeoverError):
    """A model endpoint is misconfigured (missing key, bad URL) - not a transient failure."""


def where(path: object, line: int | None = None, field: str | None = None) -> str:
    """Format a location prefix like ``records.jsonl:17: field 'labels.refusal'``."""
    out = str(path)
    if line is not None:
        out += f":{line}"
    if field:
        out += f": field '{field}'"
    return out


class StoreUnavailable(StoreError):
    """The store cannot be reached or written right now (server down, connection cut, file locked,
    disk full, read-only): nothing was changed; retry when it is back."""


class FlagConflict(StoreError):
    """A compare-and-set on a flag lost: someone else changed it since it was read; read again and retry."""


class LimitExceeded(ChangeoverError):
    """An input is larger than changeover accepts (a body, a reason, a name, JSON nesting)."""
