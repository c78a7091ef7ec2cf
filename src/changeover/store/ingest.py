"""A records file as ``responses`` rows, fast: each row's columns as JSON text and its fingerprint.

``import_file`` at scale is spent in Python per row: parsing, validating, building a ``Record``,
hashing its canonical JSON, and the driver serialising four JSON columns again. Here a plain row --
text item and model, text segment values, signals that are whole numbers >= 0, scores in [0, 1] or
null, labels 0/1, no ``label_by`` -- is checked in place and encoded by the C JSON encoder directly:
once for the canonical JSON that ``Record.fingerprint`` hashes, once per JSON column. A row that is not plain
(text signals, a float level, a label list of one, ``label_by``, a numeric field given as text, an
error...) goes through ``records.record_from_dict`` itself, so every error message is the
validator's own (file:line and field) and every accepted row is stored exactly as before.

A Parquet file of flat columns is read by column instead (``_ParquetPlan``): no dict per row, each value
encoded once and each row's JSON joined from the encoded values -- 2 us a row against 7 us row by row.
Rows come in batches (``Rows``: one list per column) that ``store.bulk`` writes as they come.
``tests/core/test_import_copy.py`` and ``tests/core/test_import_parquet.py`` check fingerprints and
columns against ``Record`` on every path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from hashlib import sha256
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, NamedTuple

from changeover.errors import where
from changeover.records import (
    _NUMERIC_OPTIONAL,
    OPTIONAL_FIELDS,
    Record,
    iter_rows,
    parquet_batches,
    record_from_dict,
    unflatten,
    unreadable_parquet,
)

# Record.fingerprint's json.dumps(sort_keys=True, ensure_ascii=False, separators=(",", ":")), as the C encoder
# that json.dumps builds on every call, built once
_ENCODER = c_make_encoder(None, json.JSONEncoder().default, encode_basestring, None, ":", ",", True, False, True)


def _encode(value: Any) -> str:
    return "".join(_ENCODER(value, 0))


_TEXT_OPTIONAL = frozenset(OPTIONAL_FIELDS) - _NUMERIC_OPTIONAL
_NUMERIC = frozenset(_NUMERIC_OPTIONAL)
_COLUMNS = frozenset({"item", "model", "segment", "signals", "labels"})


class StoredRow(NamedTuple):
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


BATCH = 20_000  # rows per batch: what one COPY statement of ``store.bulk`` carries at most


@dataclass(slots=True)
class Rows:
    """Stored rows by column: a batch of a file, in file order (``line``: each row's line of the file)."""

    line: list[int]
    item: list[str]
    model: list[str]
    segment: list[str]
    signals: list[str]
    labels: list[str]
    payload: list[str]
    fingerprint: list[str]

    def __len__(self) -> int:
        return len(self.line)

    @classmethod
    def of(cls, rows: list[StoredRow]) -> Rows:
        return cls(*(list(column) for column in zip(*rows, strict=True))) if rows else cls(*([] for _ in range(8)))

    def columns(self) -> tuple[list[Any], ...]:
        return (self.line, self.item, self.model, self.segment, self.signals, self.labels, self.payload) + (
            self.fingerprint,
        )

    def rows(self) -> Iterator[StoredRow]:
        return map(StoredRow._make, zip(*self.columns(), strict=True))

    def take(self, keep: list[int]) -> Rows:
        """The rows at the indexes ``keep``, in that order."""
        return Rows(*([column[i] for i in keep] for column in self.columns()))

    def part(self, start: int, stop: int) -> Rows:
        return Rows(*(column[start:stop] for column in self.columns()))


def stored_batches(path: str | Path) -> Iterator[Rows]:
    """Every row of a records file (JSONL, CSV, Parquet; ``records.iter_rows``) as stored rows, in batches of at
    most ``BATCH`` rows in file order: a Parquet file of plain columns by column (``_ParquetPlan``), any other
    file row by row.

    The first bad row raises ``RecordsError`` naming file:line and field (``record_from_dict``'s message),
    before its batch is yielded."""
    path = Path(path)
    plan = _ParquetPlan.of(path) if path.suffix.lower() == ".parquet" and path.exists() else None
    if plan is not None:
        yield from plan.batches()
        return
    batch = Rows.of([])
    columns = batch.columns()
    for lineno, row in iter_rows(path):
        for column, value in zip(columns, _stored(path, lineno, row), strict=True):
            column.append(value)
        if len(batch) >= BATCH:
            yield batch
            batch = Rows.of([])
            columns = batch.columns()
    if len(batch):
        yield batch


def rows_in(path: str | Path) -> int:
    """How many rows a records file holds at most: a Parquet file's own count, else its lines (counted, not
    guessed: a guess from the first lines once sent a small file of long rows down the rebuild path), 0
    when it cannot be told (gzipped, unreadable); ``store.bulk`` picks its way of writing by it."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if path.suffix.lower() == ".gz":
            return 0
        lines, last = 0, b"\n"
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):  # ~1 GB/s: a small share of what the import costs
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        return lines + (last != b"\n")
    except Exception:  # unreadable, not Parquet: reading it says why
        return 0


def stored_rows(path: str | Path) -> Iterator[StoredRow]:
    """``stored_batches`` row by row."""
    for batch in stored_batches(path):
        yield from batch.rows()


def _stored(path: Path, lineno: int, row: dict[str, Any]) -> StoredRow:
    """The stored row of a file's row (``iter_rows``' form): encoded directly when plain, else by the validator."""
    if _plain(row):
        return _stored_plain(lineno, row)
    return stored_record(lineno, record_from_dict(row, where(path, lineno)))


# --------------------------------------------------------------------------- Parquet, by column

_GROUPS = ("segment", "signals", "labels", "label_by")  # the heads records.unflatten nests dotted columns under
_ENCODE_STR: Callable[[str], str] = encode_basestring


@dataclass(frozen=True, slots=True)
class _Column:
    """One column of a Parquet file as the columnar path reads it."""

    index: int
    name: str  # the file's column name
    key: str  # the row's key: the group of a dotted column (``segment.region`` -> segment), else the name
    sub: str | None  # the key within the group (region), None for a column of its own
    role: str  # key | segment | signals | labels | text | number | sample | extra | never
    kind: str  # str | int | float | bool | null (the Arrow type)

    def read(self, values: list[Any]) -> tuple[list[str | None], list[int]]:
        """(each value's canonical JSON, None where the row has no such field; the rows _plain would not take).

        Whole-column tests and ``map`` of the C encoders first; a value at a time only where a column
        has nulls or a value the fast path does not take."""
        role, kind = self.role, self.kind
        if kind == "str" and self.sub is not None and "" in values:
            values = [None if v == "" else v for v in values]  # records.unflatten: an empty nested cell is no value
        nulls = None in values
        if kind == "null":
            return values, [] if role != "key" else list(range(len(values)))
        if role == "key":
            if kind != "str":
                return values, list(range(len(values)))
            if nulls or not all(map(str.strip, values)):
                return values, [i for i, v in enumerate(values) if v is None or not v.strip()]
            return values, []
        test = _TESTS.get((role, kind))
        if test is None:  # a field of this type is never plain: each row that has it goes to the validator
            return [None] * len(values), [i for i, v in enumerate(values) if v is not None]
        fails, fine = test
        bad: list[int] = []
        if fails is not None and not fine([v for v in values if v is not None] if nulls else values):
            bad = [i for i, v in enumerate(values) if v is not None and fails(v)]
        if kind == "bool":
            encode: Callable[[Any], str] = _BOOL.__getitem__
        elif kind == "int" and role == "number":  # record_from_dict stores a whole-number latency as a float
            encode = _float_of_int
        else:
            encode = _ENCODE_STR if kind == "str" else int.__repr__ if kind == "int" else float.__repr__
        if nulls:
            return [None if v is None else encode(v) for v in values], bad
        return list(map(encode, values)), bad


_BOOL = {True: "true", False: "false"}


def _float_of_int(v: int) -> str:
    return float.__repr__(float(v))


def _finite(values: list[float]) -> bool:
    return all(map(math.isfinite, values))


# (role, kind) -> (the test a present value fails when ``_plain`` would not take its row, or None: any value is
# taken; a test of a whole column of present values that is true when none fails it). Not here: never plain.
_TESTS: dict[tuple[str, str], tuple[Callable[[Any], bool] | None, Callable[[list[Any]], bool]]] = {
    ("segment", "str"): (lambda v: not v.strip(), lambda vs: all(map(str.strip, vs))),
    ("signals", "int"): (lambda v: v < 0, lambda vs: not vs or min(vs) >= 0),
    ("signals", "float"): (
        lambda v: not 0.0 <= v <= 1.0,
        lambda vs: not vs or (_finite(vs) and min(vs) >= 0.0 and max(vs) <= 1.0),
    ),
    ("labels", "int"): (lambda v: v != 0 and v != 1, lambda vs: set(vs) <= {0, 1}),
    ("text", "str"): (None, bool),
    ("number", "int"): (lambda v: not 0 <= v < 2**53, lambda vs: not vs or (min(vs) >= 0 and max(vs) < 2**53)),
    ("number", "float"): (
        lambda v: not (0.0 <= v and math.isfinite(v)),
        lambda vs: not vs or (_finite(vs) and min(vs) >= 0.0),
    ),
    ("sample", "int"): (lambda v: v < 0, lambda vs: not vs or min(vs) >= 0),
    ("extra", "str"): (None, bool),
    ("extra", "int"): (None, bool),
    ("extra", "bool"): (None, bool),
    ("extra", "float"): (lambda v: not math.isfinite(v), _finite),
}


def _kind(arrow_type: Any) -> str | None:
    import pyarrow as pa

    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "str"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_float32(arrow_type) or pa.types.is_float64(arrow_type):
        return "float"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_null(arrow_type):
        return "null"
    return None


def _role(key: str, sub: str | None) -> str:
    if sub is not None:
        return "never" if key == "label_by" else key
    if key in ("item", "model"):
        return "key"
    if key in _GROUPS:  # a plain segment / signals / labels is a mapping, never a single cell
        return "never"
    if key in _TEXT_OPTIONAL:
        return "text"
    if key in _NUMERIC:
        return "number"
    return "sample" if key == "sample" else "extra"


def _group(fragments: list[list[str]]) -> list[str]:
    """Each row's JSON object of the fragments ``,"key":value`` of its fields ('' where it has none)."""
    joined = fragments[0] if len(fragments) == 1 else list(map("".join, zip(*fragments, strict=True)))
    return ["{" + s[1:] + "}" if s else "" for s in joined]


def _fragments(key: str, values: Sequence[str | None]) -> list[str]:
    prefix = "," + _ENCODE_STR(key) + ":"
    if None in values:
        return ["" if v is None else prefix + v for v in values]
    return list(map(prefix.__add__, values))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class _ParquetPlan:
    """How the rows of one Parquet file become stored rows column by column, without a dict per row.

    For files of flat columns of text, numbers and booleans (dotted names nest as ``records.unflatten``
    nests them): each column is read as one Python list, every value encoded once as the canonical JSON
    encoder would (``encode_basestring``, ``int.__repr__``, ``float.__repr__``), and each row's
    canonical JSON (sorted keys, what ``Record.fingerprint`` hashes), its JSON columns and its payload
    are joined from the encoded values. A row ``_plain`` would not take (a bool signal, a label of 2, a
    NaN, ``label_by``, a missing item...) is built as ``iter_rows`` builds it and goes the row-by-row way,
    so every error is the validator's and every row is stored as before.
    """

    path: Path
    columns: tuple[_Column, ...]
    dotted: bool  # some column name has a dot: records.unflatten applies to every row

    @classmethod
    def of(cls, path: Path) -> _ParquetPlan | None:
        """The plan of ``path``, or None when the columnar path does not read this file (nested or
        temporal types, repeated names, a group given both as a column and as dotted columns, no item/model)."""
        import pyarrow.parquet as pq

        try:
            schema = pq.ParquetFile(path).schema_arrow
        except Exception as exc:  # pyarrow's ArrowInvalid, OSError...
            raise unreadable_parquet(path, exc) from None
        names = schema.names
        dotted = any("." in name for name in names)
        columns: list[_Column] = []
        for index, name in enumerate(names):
            kind = _kind(schema.field(index).type)
            if kind is None:
                return None
            head, dot, tail = name.partition(".")
            key, sub = (head, tail) if dotted and dot and head in _GROUPS else (name, None)
            columns.append(_Column(index, name, key, sub, _role(key, sub), kind))
        whole = {c.key for c in columns if c.sub is None}
        nested = {(c.key, c.sub) for c in columns if c.sub is not None}
        if (
            len(set(names)) != len(names)
            or len(nested) != sum(c.sub is not None for c in columns)
            or any(key in whole for key, _ in nested)
            or not {"item", "model"} <= whole
        ):
            return None
        return cls(path, tuple(columns), dotted)

    def batches(self) -> Iterator[Rows]:
        for line, batch in parquet_batches(self.path, BATCH):
            yield self.rows(batch, line)

    def rows(self, batch: Any, first_line: int) -> Rows:
        """The stored rows of one Arrow record batch whose first row is the file's line ``first_line``."""
        n = batch.num_rows
        raw = [batch.column(c.index).to_pylist() for c in self.columns]
        read = [c.read(values) for c, values in zip(self.columns, raw, strict=True)]
        encoded = {c.name: js for c, (js, _) in zip(self.columns, read, strict=True)}
        bad = sorted({i for _, b in read for i in b})
        item = next(values for c, values in zip(self.columns, raw, strict=True) if c.name == "item")
        model = next(values for c, values in zip(self.columns, raw, strict=True) if c.name == "model")

        def group(key: str, wrap: bool = False) -> list[str] | None:
            members = sorted((c.sub, encoded[c.name]) for c in self.columns if c.key == key and c.sub is not None)
            if not members:
                return None
            if wrap:  # the labels column holds each verdict as a list
                members = [(sub, [None if v is None else "[" + v + "]" for v in js]) for sub, js in members]
            return _group([_fragments(sub, js) for sub, js in members])

        groups = {key: group(key) for key in ("segment", "signals", "labels")}
        labels_column = group("labels", wrap=True)
        empty = ["{}"] * n
        # payload: the optional fields and, under "extra", every other field, in sorted key order
        payload_parts: list[tuple[str, list[str]]] = [
            (c.name, _fragments(c.name, encoded[c.name])) for c in self.columns if c.role in ("text", "number")
        ]
        extras = sorted((c.name, encoded[c.name]) for c in self.columns if c.role in ("extra", "sample"))
        if extras:
            payload_parts.append(("extra", _fragments("extra", _group([_fragments(k, js) for k, js in extras]))))
        payload = _group([parts for _, parts in sorted(payload_parts)]) if payload_parts else [""] * n
        # the canonical JSON: every top-level key of the row, sorted
        top: list[tuple[str, list[str]]] = [
            (c.name, _fragments(c.name, encoded[c.name]))
            for c in self.columns
            if c.sub is None and c.role not in ("never",) and c.name not in ("item", "model")
        ]
        top += [(key, _fragments(key, [None if s == "" else s for s in js])) for key, js in groups.items() if js]
        top += [
            (key, _fragments(key, [_ENCODE_STR(v) if type(v) is str else None for v in values]))
            for key, values in (("item", item), ("model", model))
        ]
        canonical = _group([parts for _, parts in sorted(top)])
        out = Rows(
            list(range(first_line, first_line + n)),
            item,
            model,
            [s or "{}" for s in groups["segment"]] if groups["segment"] else empty,
            [s or "{}" for s in groups["signals"]] if groups["signals"] else empty,
            [s or "{}" for s in labels_column] if labels_column else empty,
            [s or "{}" for s in payload],
            [sha256(s.encode()).hexdigest() for s in canonical],
        )
        for i in bad:  # in file order: the first bad row raises first
            row = {c.name: values[i] for c, values in zip(self.columns, raw, strict=True)}
            row = unflatten(row, empty_is_missing=False) if self.dotted else row
            got = _stored(self.path, first_line + i, {k: v for k, v in row.items() if v is not None})
            for column, value in zip(out.columns(), got, strict=True):
                column[i] = value
        return out
