"""The nouns: a ``Record`` is one model's response to one interaction, with its
automated signals and human labels; readers turn JSONL / CSV / Parquet files
into records, rejecting a bad row with file:line and field.

One row per response. ``item`` pairs the responses of different models to the
same interaction; ``segment`` holds the fields to split by (region, request
type); ``signals`` hold automated verdicts per dimension; ``labels`` hold human
verdicts (1 = acceptable, 0 = not; a list when several annotators judged);
``label_by`` optionally names who gave each of them (the measurement model
gives every annotator a noise rate of their own; a verdict without a name is
the unnamed annotator's, one rate for all such verdicts, as before names were
kept). A name starting ``settled:`` (``settled:<admin>``, ``settled:gold``)
marks a settled answer -- an admin's resolution or a gold answer -- which the
model takes as exact, so the other verdicts on that response measure their
annotators.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from changeover.errors import ChangeoverError, RecordsError, where

SignalValue = float | int | None
LabelValue = list[int]

OPTIONAL_FIELDS = (
    "prompt",
    "response",
    "reference",
    "latency_ms",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "error",
    "weight",
)
_NUMERIC_OPTIONAL = {"latency_ms", "tokens_in", "tokens_out", "cost_usd", "weight"}
_KNOWN = {"item", "model", "segment", "signals", "labels", "label_by", *OPTIONAL_FIELDS}
SETTLED = "settled:"  # prefix of the annotator name of a settled answer (exact: no noise)


def settled_by(name: str) -> str:
    """The ``label_by`` name of a settled answer given by ``name`` (an admin, or 'gold')."""
    return name if name.startswith(SETTLED) else SETTLED + name


def is_settled(name: str) -> bool:
    return name.startswith(SETTLED)


@dataclass(slots=True)
class Record:
    """One response of one model to one interaction.

    ``labels[dim]`` is always a list of 0/1 verdicts (one per annotator);
    ``label_by[dim]``, when given, names the annotator of each ('' = unnamed;
    ``annotators(dim)`` pads it);
    ``signals[dim]`` is an int (binary or ordinal level), a float in [0, 1]
    (a continuous score), or None (the judge could not score it).
    ``extra`` keeps any other fields of the row untouched.
    """

    item: str
    model: str
    segment: dict[str, str] = field(default_factory=dict)
    signals: dict[str, SignalValue] = field(default_factory=dict)
    labels: dict[str, LabelValue] = field(default_factory=dict)
    prompt: str | None = None
    response: str | None = None
    reference: str | None = None
    latency_ms: float | None = None
    tokens_in: float | None = None
    tokens_out: float | None = None
    cost_usd: float | None = None
    error: str | None = None
    weight: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    label_by: dict[str, list[str]] = field(default_factory=dict)

    def annotators(self, dimension: str) -> list[str]:
        """Who gave each verdict of ``labels[dimension]`` ('' for a verdict without a name)."""
        n = len(self.labels.get(dimension) or [])
        named = list(self.label_by.get(dimension) or [])[:n]
        return named + [""] * (n - len(named))

    def add_labels(self, dimension: str, verdicts: list[int], by: list[str]) -> None:
        """Append verdicts with their annotators, keeping ``label_by`` aligned with ``labels``."""
        before = self.annotators(dimension)
        self.labels[dimension] = self.labels.get(dimension, []) + list(verdicts)
        if any(before) or any(by):
            self.label_by[dimension] = before + list(by)

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON form (what JSONL files hold); empty fields omitted."""
        out: dict[str, Any] = {"item": self.item, "model": self.model}
        if self.segment:
            out["segment"] = dict(self.segment)
        if self.signals:
            out["signals"] = dict(self.signals)
        if self.labels:
            out["labels"] = {k: (v[0] if len(v) == 1 else list(v)) for k, v in self.labels.items()}
        by = {k: self.annotators(k) for k in self.labels if any(self.annotators(k))}
        if by:
            out["label_by"] = {k: (v[0] if len(v) == 1 else v) for k, v in by.items()}
        for name in OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.extra)
        return out

    @property
    def sample(self) -> int:
        """Which of its item's repeated samples this answer is (``evaluate --samples k`` writes 0..k-1); 0 if unset."""
        value = self.extra.get("sample", 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RecordsError(
                f"item '{self.item}' (model '{self.model}'): field 'sample' must be a whole number >= 0 "
                f"(which of the item's repeated samples this is), got {value!r}"
            )
        return value

    def fingerprint(self) -> str:
        """A stable hash of the record's content: re-importing it is a no-op."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


# --------------------------------------------------------------------------- validation


def _text(value: Any, loc: str, name: str) -> str:
    if isinstance(value, bool) or value is None:
        raise RecordsError(f"{loc}: field '{name}' must be a non-empty string, got {value!r}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise RecordsError(f"{loc}: field '{name}' must be a non-empty string, got {value!r}")
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise RecordsError(f"{loc}: field '{name}' must be a non-empty string, got {value!r}")
    return value


def parse_signal(value: Any, loc: str, name: str) -> SignalValue:
    """A signal: 0/1/true/false, an ordinal integer >= 1, a float in [0, 1], or null."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "false"):
            return int(low == "true")
        if low in ("null", "none", "unscorable", "na", "nan"):
            return None
        try:
            value = float(low) if any(c in low for c in ".e") else int(low)
        except ValueError:
            raise RecordsError(
                f"{loc}: field '{name}': expected 0/1, an integer level 1..K or a score in [0,1], got {value!r}"
            ) from None
    if isinstance(value, int):
        if value < 0:
            raise RecordsError(f"{loc}: field '{name}': a level cannot be negative, got {value}")
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer() and value > 1:
            return int(value)
        if 0.0 <= value <= 1.0:
            return value
        raise RecordsError(
            f"{loc}: field '{name}': a continuous score must lie in [0, 1], got {value}; "
            "rescale it or give an integer level"
        )
    raise RecordsError(f"{loc}: field '{name}': expected a number, got {type(value).__name__}")


def _label_one(value: Any, loc: str, name: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        low = value.strip().lower()
        mapping = {"1": 1, "0": 0, "true": 1, "false": 0, "1.0": 1, "0.0": 0}
        if low in mapping:
            return mapping[low]
    elif isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    raise RecordsError(f"{loc}: field '{name}': a human label is 1 (acceptable) or 0 (not), got {value!r}")


def parse_label(value: Any, loc: str, name: str) -> LabelValue | None:
    """A label: 0/1, or a list of 0/1 (several annotators); None/empty = unlabelled."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RecordsError(f"{loc}: field '{name}': not a JSON list: {value!r}") from None
    if isinstance(value, list):
        return [_label_one(v, loc, name) for v in value]
    return [_label_one(value, loc, name)]


def _number(value: Any, loc: str, name: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordsError(f"{loc}: field '{name}' must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise RecordsError(f"{loc}: field '{name}' must be a number, got {value!r}") from None
    if not math.isfinite(out) or out < 0:
        raise RecordsError(f"{loc}: field '{name}' must be a finite number >= 0, got {value!r}")
    return out


def _mapping(value: Any, loc: str, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordsError(f"{loc}: field '{name}' must be an object, got {type(value).__name__}")
    return value


def _label_by(value: Any, labels: dict[str, LabelValue], loc: str) -> dict[str, list[str]]:
    """``label_by``: per labelled dimension, one annotator name per verdict (a name, or a list of them)."""
    out: dict[str, list[str]] = {}
    for k, v in _mapping(value, loc, "label_by").items():
        name = f"label_by.{k}"
        if isinstance(v, str) and v.strip().startswith("["):
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                raise RecordsError(f"{loc}: field '{name}': not a JSON list: {v!r}") from None
        names = v if isinstance(v, list) else [v]
        if v is None or v == "" or v == []:
            continue
        if not all(isinstance(x, str) for x in names):
            raise RecordsError(f"{loc}: field '{name}': annotator names are text, got {v!r}")
        have = len(labels.get(str(k)) or [])
        if len(names) != have:
            raise RecordsError(
                f"{loc}: field '{name}': {len(names)} annotator name(s) for {have} verdict(s) in 'labels.{k}'; "
                "give one name per verdict, in the same order"
            )
        out[str(k)] = [x.strip() for x in names]
    return out


def record_from_dict(row: dict[str, Any], loc: str) -> Record:
    """Validate one row (nested form) into a Record; ``loc`` is 'file:line'."""
    if not isinstance(row, dict):
        raise RecordsError(f"{loc}: a row must be a JSON object, got {type(row).__name__}")
    for required in ("item", "model"):
        if required not in row:
            raise RecordsError(f"{loc}: missing field '{required}' (every row needs 'item' and 'model')")
    segment = {str(k): _text(v, loc, f"segment.{k}") for k, v in _mapping(row.get("segment"), loc, "segment").items()}
    signals = {
        str(k): parse_signal(v, loc, f"signals.{k}") for k, v in _mapping(row.get("signals"), loc, "signals").items()
    }
    labels: dict[str, LabelValue] = {}
    for k, v in _mapping(row.get("labels"), loc, "labels").items():
        parsed = parse_label(v, loc, f"labels.{k}")
        if parsed is not None:
            labels[str(k)] = parsed
    rec = Record(
        item=_text(row["item"], loc, "item"),
        model=_text(row["model"], loc, "model"),
        segment=segment,
        signals=signals,
        labels=labels,
        label_by=_label_by(row.get("label_by"), labels, loc),
    )
    for name in OPTIONAL_FIELDS:
        value = row.get(name)
        if value is None:
            continue
        if name in _NUMERIC_OPTIONAL:
            setattr(rec, name, _number(value, loc, name))
        else:
            setattr(rec, name, value if isinstance(value, str) else json.dumps(value))
    rec.extra = {k: v for k, v in row.items() if k not in _KNOWN}
    if isinstance(rec.extra.get("sample"), str) and rec.extra["sample"].strip().isdigit():  # CSV cells are text
        rec.extra["sample"] = int(rec.extra["sample"])
    try:
        rec.sample  # noqa: B018  (validates the field)
    except RecordsError as exc:
        raise RecordsError(f"{loc}: {exc}") from None
    return rec


def unflatten(row: dict[str, Any], empty_is_missing: bool = True) -> dict[str, Any]:
    """Columns ``segment.region``, ``signals.x``, ``labels.x`` -> nested dicts; an empty nested cell is no value.

    ``empty_is_missing``: an empty top-level cell is no value too (CSV, where every cell is text). A typed
    file (Parquet) says missing with a null, and its empty top-level string is a value: an empty ``response``
    is an empty answer, a failed call, as in JSONL.
    """
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key is None:
            continue
        head, dot, tail = key.partition(".")
        if dot and head in ("segment", "signals", "labels", "label_by"):
            if value is None or value == "":
                continue
            out.setdefault(head, {})[tail] = value
        else:
            out[key] = None if empty_is_missing and value == "" else value
    return out


# --------------------------------------------------------------------------- readers


def jsonl_objects(
    path: Path, error: type[ChangeoverError] = RecordsError, opener: Callable[..., IO[str]] = open
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSONL file.

    A line that is not JSON, or not a JSON object, raises ``error`` naming
    file:line. The one JSONL reader: records, label files and embedding corpora
    all read through it.
    """
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(
                    f"{where(path, lineno)}: not valid JSON ({exc.msg} at column {exc.colno}); fix or remove the line"
                ) from None
            if not isinstance(obj, dict):
                raise error(f"{where(path, lineno)}: each line must be a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def iter_rows(path: str | Path, required: tuple[str, ...] = ("item", "model")) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, raw nested row) from a JSONL, CSV or Parquet file.

    ``required``: the columns a CSV header must have (records need item and
    model; logged traffic only item). Text that is not UTF-8 is a RecordsError.
    """
    try:
        yield from _iter_rows(Path(path), required)
    except UnicodeDecodeError as exc:
        raise RecordsError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); re-save it as UTF-8, "
            "e.g. from a spreadsheet choose 'CSV UTF-8'"
        ) from None


def _iter_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.exists():
        raise RecordsError(f"{path}: no such file; give the path of a .jsonl, .csv or .parquet records file")
    suffix = path.suffix.lower()
    if suffix == ".gz":
        suffix = Path(path.stem).suffix.lower()
        if suffix not in (".jsonl", ".ndjson"):
            raise RecordsError(f"{path}: only gzipped JSONL (.jsonl.gz) is read compressed")
        opener = gzip.open
    else:
        opener = open
    if suffix in (".jsonl", ".ndjson", ".json"):
        yield from jsonl_objects(path, RecordsError, opener)
    elif suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                needed = " and ".join(f"'{c}'" for c in required)
                raise RecordsError(
                    f"{where(path, 1)}: the CSV header needs column(s) {needed}; "
                    f"missing {missing} (got {reader.fieldnames})"
                )
            for lineno, row in enumerate(reader, 2):
                yield lineno, unflatten(row)
    elif suffix == ".parquet":
        for first, batch in parquet_batches(path, 65536):  # memory flat in the rows
            for lineno, row in enumerate(batch.to_pylist(), first):
                row = unflatten(row, empty_is_missing=False) if any("." in k for k in row) else row
                yield lineno, {k: v for k, v in row.items() if v is not None}
    else:
        raise RecordsError(f"{path}: unknown records format '{suffix}'; use .jsonl, .jsonl.gz, .csv or .parquet")


def unreadable_parquet(path: str | Path, exc: BaseException, line: int | None = None) -> RecordsError:
    """The error for a Parquet file pyarrow cannot read (no footer, a damaged row group), at ``line`` if known."""
    return RecordsError(
        f"{where(path, line)}: cannot be read as Parquet ({exc}); check that the file is whole "
        "(copy or export it again)"
    )


def parquet_batches(path: str | Path, size: int) -> Iterator[tuple[int, Any]]:
    """(the file's line of its first row, Arrow record batch) of a Parquet file, ``size`` rows at a time;
    a file pyarrow cannot open, or a damaged row group, is ``unreadable_parquet``."""
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise RecordsError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        batches = pq.ParquetFile(path).iter_batches(size)
    except Exception as exc:  # pyarrow's ArrowInvalid (no footer), OSError
        raise unreadable_parquet(path, exc) from None
    line = 1
    while True:
        try:
            batch = next(batches, None)
        except Exception as exc:  # a damaged row group
            raise unreadable_parquet(path, exc, line) from None
        if batch is None:
            return
        yield line, batch
        line += batch.num_rows


def read_records(path: str | Path) -> list[Record]:
    """Read and validate a whole records file; the first bad row raises with file:line."""
    path = Path(path)
    return [record_from_dict(row, where(path, lineno)) for lineno, row in iter_rows(path)]


def write_records(records: Iterable[Record], path: str | Path) -> int:
    """Write records as JSONL (the canonical form); returns the number written."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n
