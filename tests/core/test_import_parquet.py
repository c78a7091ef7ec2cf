"""A Parquet file read by column (``store.ingest._ParquetPlan``) gives the stored rows the row-by-row path gives.

The reference is the validator: each row as ``records.iter_rows`` reads it, through ``record_from_dict``
and ``stored_record``. Files with dotted and plain column names, every Arrow type the columnar path takes
(text, integers, float64, float32, bool, an all-null column), nulls and empty cells, and rows it must hand
to the validator (a bool or text signal, a float level, a label of 1.0, ``label_by``, a whole-number
latency, a text number, an int item, NaN in an extra, control characters and non-ASCII text); a bad row
raises the validator's own error with the file's line; files the plan does not take (a struct column,
repeated groups) still read the same.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from changeover.errors import RecordsError
from changeover.records import iter_rows, record_from_dict
from changeover.store import ingest
from changeover.store.ingest import _ParquetPlan, stored_batches, stored_record, stored_rows

N = 120


def reference(path: Path) -> list[ingest.StoredRow]:
    return [stored_record(line, record_from_dict(row, f"{path}:{line}")) for line, row in iter_rows(path)]


def columns(n: int = N) -> dict[str, pa.Array]:
    """Dotted columns of every kind, with nulls and cells the validator must read."""
    i = list(range(n))
    return {
        "item": pa.array([f"q{k:03d}" if k % 17 else f'tab\t\\ "q" {k} ü' for k in i]),
        "model": pa.array(["old", "new"] * (n // 2)),
        "segment.region": pa.array([["emea", "日本", None, ""][k % 4] for k in i]),
        "segment.tier": pa.array([None if k % 5 else "gold" for k in i]),
        "signals.correct": pa.array([[0, 1, None, 3][k % 4] for k in i], pa.int64()),
        "signals.score": pa.array([[0.25, 1.0, None, 0.1 + k / 1000][k % 4] for k in i], pa.float64()),
        "signals.small": pa.array([None if k % 7 else 0.3 for k in i], pa.float32()),
        "signals.ok": pa.array([None if k % 9 else bool(k % 2) for k in i], pa.bool_()),  # bool: the validator's
        "signals.level": pa.array([None if k % 11 else 3.0 for k in i], pa.float64()),  # a float level
        "signals.text": pa.array([None if k % 13 else "0.5" for k in i]),  # a text signal
        "labels.correctness": pa.array([[None, 0, 1, None][k % 4] for k in i], pa.int64()),
        "labels.style": pa.array([None if k % 19 else 1.0 for k in i], pa.float64()),  # 1.0: the validator's
        "label_by.correctness": pa.array(["ann" if k % 4 == 1 and k % 3 == 0 else None for k in i]),
        "latency_ms": pa.array([None if k % 3 else 100 + k for k in i], pa.int64()),  # whole number -> float
        "cost_usd": pa.array([None if k % 4 else k / 7 for k in i], pa.float64()),
        "tokens_in": pa.array([None if k % 29 else "12" for k in i]),  # a number as text: the validator's
        "error": pa.array([None if k % 13 else "timeout" for k in i]),
        "prompt": pa.array([f"line\nbreak {k}" if k % 2 else "" for k in i]),
        "sample": pa.array([k % 3 for k in i], pa.int64()),
        "trace_id": pa.array([f"t{k}" if k % 2 else None for k in i]),
        "flag": pa.array([None if k % 3 else k % 2 == 0 for k in i], pa.bool_()),
        "ratio": pa.array([math.nan if k == 31 else k / 3 for k in i], pa.float64()),  # NaN in an extra
        "nothing": pa.nulls(n),
        "extra.dot": pa.array([k for k in i], pa.int32()),  # a dotted name outside the groups stays a key
    }


def write(path: Path, cols: dict[str, pa.Array], rows_per_group: int | None = None) -> Path:
    pq.write_table(pa.table(cols), path, row_group_size=rows_per_group)
    return path


def test_dotted_columns_of_every_kind_store_what_the_validator_stores(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(ingest, "BATCH", 50)  # several batches: line numbers carry over
    path = write(tmp_path / "r.parquet", columns(), rows_per_group=40)
    assert _ParquetPlan.of(path) is not None  # the columnar path reads this file
    by_row: list[int] = []
    row_path = ingest._stored
    monkeypatch.setattr(ingest, "_stored", lambda p, line, row: by_row.append(line) or row_path(p, line, row))
    got = list(stored_rows(path))
    assert 0 < len(by_row) < N / 2  # most rows by column, the odd ones by the validator
    want = reference(path)
    assert len(got) == len(want) == N
    for a, b in zip(got, want, strict=True):
        assert a == b
    assert [len(b) for b in stored_batches(path)] == [50, 50, 20]


def test_plain_names_and_optional_columns(tmp_path: Path) -> None:
    """No dotted name: an empty cell stays an empty text (records.unflatten does not apply)."""
    cols = {
        "model": pa.array(["a", "b", "c", "d"]),
        "item": pa.array(["x", "y", " ", "z"]),
        "response": pa.array(["", None, "r", "s"]),
        "weight": pa.array([1.5, 2.0, None, 0.0], pa.float64()),
        "reference": pa.array(["", "ref", None, "\x01 control"]),
    }
    path = write(tmp_path / "p.parquet", cols)
    assert _ParquetPlan.of(path) is not None
    with pytest.raises(RecordsError) as caught:
        list(stored_rows(path))
    with pytest.raises(RecordsError) as expected:
        reference(path)
    assert str(caught.value) == str(expected.value)
    assert f"{path}:3" in str(caught.value)  # the blank item
    del cols["item"]
    cols["item"] = pa.array(["x", "y", "w", "z"])
    path = write(tmp_path / "p.parquet", cols)
    assert list(stored_rows(path)) == reference(path)


@pytest.mark.parametrize(
    ("column", "values", "field"),
    [
        ("labels.correctness", pa.array([1, 0, 7, 1], pa.int64()), "labels.correctness"),
        ("signals.correct", pa.array([1, 0, -2, 0], pa.int64()), "signals.correct"),
        ("latency_ms", pa.array([1.0, None, -5.0, 3.0], pa.float64()), "latency_ms"),
    ],
)
def test_a_bad_cell_is_the_validators_error_with_the_files_line(
    tmp_path: Path, monkeypatch: Any, column: str, values: pa.Array, field: str
) -> None:
    monkeypatch.setattr(ingest, "BATCH", 2)  # the bad row (line 3) is in the second batch
    cols = {"item": pa.array(list("abcd")), "model": pa.array(["m"] * 4), "segment.r": pa.array(["x"] * 4)}
    path = write(tmp_path / "b.parquet", cols | {column: values})
    with pytest.raises(RecordsError) as expected:
        reference(path)
    assert f"b.parquet:3: field '{field}'" in str(expected.value)
    with pytest.raises(RecordsError) as caught:
        list(stored_rows(path))
    assert str(caught.value) == str(expected.value)


def test_files_the_plan_does_not_take_read_the_same(tmp_path: Path) -> None:
    nested = pa.table(
        {
            "item": ["a", "b"],
            "model": ["m", "n"],
            "segment": pa.array([{"region": "emea"}, {"region": "na"}]),
            "signals.correct": pa.array([1, 0], pa.int64()),
        }
    )
    path = tmp_path / "nested.parquet"
    pq.write_table(nested, path)
    assert _ParquetPlan.of(path) is None  # a struct column: row by row
    assert list(stored_rows(path)) == reference(path)
    assert [r.segment for r in stored_rows(path)] == ['{"region":"emea"}', '{"region":"na"}']


def test_a_file_that_is_not_parquet_is_a_records_error(tmp_path: Path) -> None:
    whole = write(tmp_path / "whole.parquet", columns())
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[:-100])  # a copy that stopped short: no footer
    with pytest.raises(
        RecordsError, match=r"cut\.parquet: cannot be read as Parquet \(.*\); check that the file is whole"
    ):
        list(stored_batches(cut))
