"""Records files: JSONL, CSV, Parquet and gzip read alike; a bad row names file:line and field."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from changeover.errors import RecordsError
from changeover.records import read_records, write_records

ROWS = [
    {
        "item": "q-1",
        "segment": {"region": "emea"},
        "model": "legacy",
        "signals": {"correctness": 1, "style": 4},
        "labels": {"correctness": 1},
        "latency_ms": 120.5,
        "prompt": "hi",
    },
    {
        "item": "q-1",
        "segment": {"region": "emea"},
        "model": "cand",
        "signals": {"correctness": 0.73},
        "labels": {"correctness": [1, 0]},
    },
    {"item": "q-2", "segment": {"region": "na"}, "model": "legacy", "signals": {"correctness": None}},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_fields_and_types(tmp_path):
    recs = read_records(_jsonl(tmp_path / "r.jsonl", ROWS))
    assert [r.model for r in recs] == ["legacy", "cand", "legacy"]
    assert recs[0].signals == {"correctness": 1, "style": 4}
    assert recs[0].labels == {"correctness": [1]}
    assert recs[1].labels == {"correctness": [1, 0]}
    assert recs[1].signals["correctness"] == pytest.approx(0.73)
    assert recs[2].signals["correctness"] is None
    assert recs[0].latency_ms == 120.5 and recs[0].prompt == "hi"


def test_round_trip_and_gzip(tmp_path):
    recs = read_records(_jsonl(tmp_path / "r.jsonl", ROWS))
    write_records(recs, tmp_path / "out.jsonl")
    with gzip.open(tmp_path / "out.jsonl.gz", "wt") as fh:
        fh.write((tmp_path / "out.jsonl").read_text())
    again = read_records(tmp_path / "out.jsonl.gz")
    assert [r.fingerprint() for r in again] == [r.fingerprint() for r in recs]


def test_csv_flattened_columns(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(
        "item,model,segment.region,signals.correctness,labels.correctness\nq-1,legacy,emea,1,1\nq-1,cand,emea,0,\n"
    )
    recs = read_records(path)
    assert recs[0].segment == {"region": "emea"} and recs[0].labels == {"correctness": [1]}
    assert recs[1].labels == {} and recs[1].signals == {"correctness": 0}


def test_parquet(tmp_path):
    path = tmp_path / "r.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "item": "q-1",
                    "model": "legacy",
                    "segment.region": "emea",
                    "signals.correctness": 1,
                    "labels.correctness": 0,
                }
            ]
        ),
        path,
    )
    (rec,) = read_records(path)
    assert rec.segment == {"region": "emea"} and rec.labels == {"correctness": [0]}


@pytest.mark.parametrize(
    "row, needle",
    [
        ({"model": "m"}, "missing field 'item'"),
        ({"item": "a", "model": "m", "labels": {"correctness": "yes"}}, "field 'labels.correctness'"),
        ({"item": "a", "model": "m", "signals": {"correctness": 1.7}}, "field 'signals.correctness'"),
        ({"item": "a", "model": "m", "latency_ms": "fast"}, "field 'latency_ms'"),
        ({"item": "a", "model": "m", "segment": "emea"}, "field 'segment' must be an object"),
    ],
)
def test_bad_row_names_line_and_field(tmp_path, row, needle):
    path = _jsonl(tmp_path / "bad.jsonl", [ROWS[0], ROWS[1], row])
    with pytest.raises(RecordsError) as err:
        read_records(path)
    assert f"bad.jsonl:3: {needle}" in str(err.value) or ("bad.jsonl:3" in str(err.value) and needle in str(err.value))


def test_invalid_json_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(RecordsError, match=r"bad.jsonl:2: not valid JSON"):
        read_records(path)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(RecordsError, match="no such file"):
        read_records(tmp_path / "nope.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(RecordsError, match="unknown records format"):
        read_records(tmp_path / "x.txt")


def test_non_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("item,model,labels.x\nq-1,legacy,1\nq-2,caf\xe9,0\n".encode("cp1252"))
    with pytest.raises(RecordsError, match="not UTF-8"):
        read_records(path)


def test_csv_header_names_the_missing_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("item,signals.x\nq-1,1\n")
    with pytest.raises(RecordsError, match=r"r.csv:1: the CSV header needs column\(s\) 'item' and 'model'"):
        read_records(path)


def test_a_damaged_parquet_file_names_the_file_and_the_row(tmp_path):
    path = tmp_path / "r.parquet"
    rows = [{"item": f"i{i}", "model": "m", "response": "x" * 50} for i in range(4000)]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=1000)
    whole = path.read_bytes()
    path.write_bytes(whole[:4] + b"\xff" * 2000 + whole[2004:])  # the first row group's pages overwritten
    with pytest.raises(RecordsError, match=r"r\.parquet(:\d+)?: cannot be read as Parquet"):
        read_records(path)
    path.write_bytes(whole[: len(whole) // 2])  # cut: no footer
    with pytest.raises(RecordsError, match=r"r\.parquet: cannot be read as Parquet"):
        read_records(path)


def test_an_empty_answer_in_parquet_is_an_empty_answer_as_in_jsonl(tmp_path):
    """Dotted columns nest as in CSV, but a typed file's empty top-level text is a value (a failed call)."""
    rows = [
        {"item": "a", "model": "m", "response": "", "segment.region": "", "signals.x": 1},
        {"item": "b", "model": "m", "response": None, "segment.region": "eu", "signals.x": 0},
    ]
    path = tmp_path / "r.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    a, b = read_records(path)
    assert a.response == "" and a.segment == {} and b.response is None and b.segment == {"region": "eu"}
