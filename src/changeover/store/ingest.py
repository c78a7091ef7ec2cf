"""A records file as ``responses`` rows, fast: each row's columns as JSON text and its fingerprint.

``import_file`` at scale is spent in Python per row: parsing, validating, building a ``Record``,
hashing its canonical JSON, and the driver serialising four JSON columns again. Here a plain row --
text item and model, text segment values, signals that are whole numbers >= 0, scores in [0, 1] or
null, labels 0/1, no ``label_by`` -- is checked in place and encoded by the C JSON encoder directly:
once for the canonical JSON that ``Record.fingerprint`` hashes, once per JSON column. A row that is not plain
(text signals, a float level, a label list of one, ``label_by``, a numeric field given as text, an
error...) goes through ``records.record_from_dict`` itself, so every error message is the
validator's own (file:line and field) and every accepted row is stored exactly as before.
``tests/core/test_import_copy.py`` checks fingerprints and columns against ``Record`` on both paths.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from changeover.errors import where
from changeover.records import _NUMERIC_OPTIONAL, OPTIONAL_FIELDS, Record, iter_rows, record_from_dict

# Record.fingerprint's json.dumps(sort_keys=True, ensure_ascii=False, separators=(",", ":")), as the C encoder
# that json.dumps builds on every call, built once
_ENCODER = c_make_encoder(None, json.JSONEncoder().default, encode_basestring, None, ":", ",", True, False, True)


def _encode(value: Any) -> str:
    return "".join(_ENCODER(value, 0))


_TEXT_OPTIONAL = frozenset(OPTIONAL_FIELDS) - _NUMERIC_OPTIONAL
_NUMERIC = frozenset(_NUMERIC_OPTIONAL)
_COLUMNS = frozenset({"item", "model", "segment", "signals", "labels"})


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One response as the ``responses`` table holds it: JSON columns as text, and its fingerprint."""

    line: int
    item: str
    model: str
    segment: str
    signals: str
    labels: str
    payload: str
    fingerprint: str


def _text_ok(value: Any) -> bool:
    return type(value) is str and bool(value.strip())


def _signals_ok(signals: dict[str, Any]) -> bool:
    for v in signals.values():
        kind = type(v)
        if kind is int:
            if v < 0:
                return False
        elif kind is float:
            if not 0.0 <= v <= 1.0:  # NaN, a float level > 1, a negative score: the validator's
                return False
        elif v is not None:
            return False
    return True


def _labels_ok(labels: dict[str, Any]) -> bool:
    for v in labels.values():
        if type(v) is int:
            if v != 0 and v != 1:
                return False
        elif type(v) is list and len(v) > 1:  # a list of one is stored as its verdict: the validator's
            if any(type(x) is not int or (x != 0 and x != 1) for x in v):
                return False
        else:
            return False
    return True


def _plain(row: dict[str, Any]) -> bool:
    """Whether ``row`` (a parsed file row, normalised here in place) is already ``Record.to_dict()``'s form.

    True only when ``record_from_dict`` would accept the row and give back the same values: then the
    row's own JSON is the canonical JSON. Empty ``segment`` / ``signals`` / ``labels`` and null optional
    fields are dropped, and whole-number latency / tokens / cost / weight become floats, as
    ``record_from_dict`` makes them; anything else returns False (the validator reads the row).
    """
    if "item" not in row or "model" not in row:
        return False
    drop: list[str] = []
    floats: list[str] = []
    for k, v in row.items():
        if k == "item" or k == "model":
            if not _text_ok(v):
                return False
        elif k == "segment" or k == "signals" or k == "labels":
            if type(v) is dict:
                if not v:
                    drop.append(k)
                elif not (
                    all(_text_ok(x) for x in v.values())
                    if k == "segment"
                    else _signals_ok(v)
                    if k == "signals"
                    else _labels_ok(v)
                ):
                    return False
            elif v is None:
                drop.append(k)
            else:
                return False
        elif k in _TEXT_OPTIONAL:
            if v is None:
                drop.append(k)
            elif type(v) is not str:
                return False
        elif k in _NUMERIC:
            kind = type(v)
            if v is None:
                drop.append(k)
            elif kind is int and 0 <= v < 2**53:
                floats.append(k)
            elif kind is not float or not (0.0 <= v and math.isfinite(v)):
                return False
        elif k == "label_by":
            return False
        elif k == "sample" and (type(v) is not int or v < 0):
            return False
    for k in drop:
        del row[k]
    for k in floats:
        row[k] = float(row[k])
    return True


def _stored_plain(line: int, row: dict[str, Any]) -> StoredRow:
    """The stored row of a plain row: its canonical JSON (one C encoder call) and its columns."""
    payload: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for k in row:
        if k not in _COLUMNS:
            if k in _TEXT_OPTIONAL or k in _NUMERIC:
                payload[k] = row[k]
            else:
                extra[k] = row[k]
    if extra:
        payload["extra"] = extra
    segment, signals, labels = row.get("segment"), row.get("signals"), row.get("labels")
    return StoredRow(
        line,
        row["item"],
        row["model"],
        "{}" if segment is None else _encode(segment),
        "{}" if signals is None else _encode(signals),
        "{}" if labels is None else _encode({k: v if type(v) is list else [v] for k, v in labels.items()}),
        _encode(payload) if payload else "{}",
        sha256(_encode(row).encode()).hexdigest(),
    )


def stored_record(line: int, rec: Record) -> StoredRow:
    """The stored row of a validated ``Record`` (what ``responses._row`` stores, as JSON text)."""
    payload: dict[str, Any] = {name: getattr(rec, name) for name in OPTIONAL_FIELDS if getattr(rec, name) is not None}
    if rec.extra:
        payload["extra"] = rec.extra
    if rec.label_by:
        payload["label_by"] = rec.label_by
    return StoredRow(
        line,
        rec.item,
        rec.model,
        _encode(rec.segment),
        _encode(rec.signals),
        _encode(rec.labels),
        _encode(payload),
        rec.fingerprint(),
    )


def stored_rows(path: str | Path) -> Iterator[StoredRow]:
    """Every row of a records file (JSONL, CSV, Parquet; ``records.iter_rows``) as a stored row, in file order.

    The first bad row raises ``RecordsError`` naming file:line and field (``record_from_dict``'s message),
    before that row is yielded."""
    path = Path(path)
    for lineno, row in iter_rows(path):
        if _plain(row):
            yield _stored_plain(lineno, row)
        else:
            yield stored_record(lineno, record_from_dict(row, where(path, lineno)))
