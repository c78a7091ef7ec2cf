"""Reading label files made outside the app: a spreadsheet CSV or a JSONL file
(``label export`` writes both), one verdict per row or one column per dimension.

Long form: columns ``item, model, dimension, value`` (+ optional ``annotator,
status, created_at, client_id, note``). Wide form: ``item, model`` plus one column
per dimension, named ``labels.<dimension>`` or, with a spec, the dimension's
name; an empty cell means "not judged". Every problem names file:line and field.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from changeover.errors import RecordsError, where
from changeover.records import jsonl_objects

_TRUE = {"1", "1.0", "true", "yes", "y", "pass", "acceptable", "good", "ok", "correct"}
_FALSE = {"0", "0.0", "false", "no", "n", "fail", "not acceptable", "unacceptable", "bad", "incorrect"}


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text`` with one more leading apostrophe if a spreadsheet would run it as a formula
    (apostrophes already in front count: ``'=x`` becomes ``''=x``, so ``unguarded`` is exact)."""
    return "'" + text if text.lstrip("'").startswith(FORMULA_STARTS) else text


def unguarded(text: str) -> str:
    """Undo ``spreadsheet_safe`` (CSV only: JSONL is never guarded)."""
    return text[1:] if text.startswith("'") and text.lstrip("'").startswith(FORMULA_STARTS) else text


@dataclass(frozen=True, slots=True)
class IncomingLabel:
    """One verdict read from a file, with where it came from."""

    loc: str
    item: str
    model: str
    dimension: str
    value: int | None
    status: str
    annotator: str
    created_at: datetime | None
    client_id: str
    note: str | None = None  # why it was flagged, or a comment (long form: column 'note')

    def content_id(self, source: str) -> str:
        """A client id from the content, so that importing the same file twice adds nothing."""
        blob = "\x1f".join(
            str(x)
            for x in (self.annotator, self.item, self.model, self.dimension, self.value, self.status, self.created_at)
        )
        return f"{source}:{hashlib.sha256(blob.encode()).hexdigest()[:32]}"


def parse_verdict(value: Any, loc: str) -> int | None:
    """1/0, true/false, yes/no, pass/fail, acceptable/not acceptable; empty = None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    low = str(value).strip().lower()
    if low in _TRUE:
        return 1
    if low in _FALSE:
        return 0
    raise RecordsError(f"{loc}: a verdict is 1 (acceptable) or 0 (not acceptable), got {value!r}")


def parse_time(value: Any, loc: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        at = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise RecordsError(f"{loc}: an ISO 8601 time like 2026-11-23T09:30:00Z, got {value!r}") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def text(value: Any, loc: str) -> str:
    if value is None or not str(value).strip():
        raise RecordsError(f"{loc}: must not be empty")
    return str(value).strip()


def _long_row(row: dict[str, Any], loc: str, annotator: str) -> IncomingLabel:
    status = str(row.get("status") or "label").strip()
    if status not in ("label", "skip", "flag", "gold"):
        raise RecordsError(f"{loc}: field 'status': label, gold, skip or flag, got {status!r}")
    value = parse_verdict(row.get("value"), f"{loc}: field 'value'")
    if status in ("label", "gold") and value is None:
        raise RecordsError(f"{loc}: field 'value': a label needs 1 or 0 (use status 'skip' for none)")
    return IncomingLabel(
        loc,
        text(row.get("item"), f"{loc}: field 'item'"),
        text(row.get("model"), f"{loc}: field 'model'"),
        text(row.get("dimension"), f"{loc}: field 'dimension'"),
        value if status in ("label", "gold") else None,
        status,
        str(row.get("annotator") or annotator).strip(),
        parse_time(row.get("created_at"), f"{loc}: field 'created_at'"),
        str(row.get("client_id") or "").strip(),
        str(row.get("note") or "").strip() or None,
    )


def _wide_rows(row: dict[str, Any], loc: str, annotator: str, columns: dict[str, str]) -> Iterator[IncomingLabel]:
    item = text(row.get("item"), f"{loc}: field 'item'")
    model = text(row.get("model"), f"{loc}: field 'model'")
    who = str(row.get("annotator") or annotator).strip()
    at = parse_time(row.get("created_at"), f"{loc}: field 'created_at'")
    for column, dim in columns.items():
        value = parse_verdict(row.get(column), f"{loc}: field '{column}'")
        if value is not None:
            yield IncomingLabel(loc, item, model, dim, value, "label", who, at, "")


def wide_columns(header: list[str], dimensions: list[str] | None, loc: str) -> dict[str, str]:
    """Column -> dimension for the wide form; an error when no column names a dimension."""
    out = {c: c.split(".", 1)[1] for c in header if c.startswith("labels.")}
    for c in header:
        if dimensions and c in dimensions:
            out[c] = c
    if not out:
        raise RecordsError(
            f"{loc}: no columns 'dimension' and 'value', and no column naming a dimension "
            "('labels.<dimension>', or the dimension's name with --spec); see "
            "`changeover label import --help`"
        )
    return out


def rows_from_table(
    rows: Iterator[tuple[int, dict[str, Any]]],
    path: Path,
    header: list[str],
    annotator: str,
    dimensions: list[str] | None,
) -> Iterator[IncomingLabel]:
    missing = [c for c in ("item", "model") if c not in header]
    if missing:
        raise RecordsError(f"{where(path, 1)}: missing column(s) {', '.join(missing)}")
    if "dimension" in header and "value" in header:
        for lineno, row in rows:
            yield _long_row(row, where(path, lineno), annotator)
        return
    columns = wide_columns(header, dimensions, where(path, 1))
    for lineno, row in rows:
        yield from _wide_rows(row, where(path, lineno), annotator, columns)


def read_csv(path: Path, annotator: str, dimensions: list[str] | None) -> list[IncomingLabel]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = ((reader.line_num, _unguard_note(row)) for row in reader)
        return list(rows_from_table(rows, path, header, annotator, dimensions))


def _unguard_note(row: dict[str, Any]) -> dict[str, Any]:
    note = row.get("note")
    return {**row, "note": unguarded(note.strip())} if isinstance(note, str) else row


def read_jsonl(path: Path, annotator: str, dimensions: list[str] | None) -> list[IncomingLabel]:
    parsed = list(jsonl_objects(path))
    header = sorted({k for _, row in parsed for k in row}) if parsed else ["item", "model"]
    return list(rows_from_table(iter(parsed), path, header, annotator, dimensions))
