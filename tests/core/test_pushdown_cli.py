"""``assess --engine duckdb|python|auto``, ``--show-sql`` and ``--tables FILE`` on the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from changeover.assessment import pushdown
from changeover.assessment.pushdown_tables import table_rows
from changeover.cli import run
from changeover.config import load_spec

from .test_pushdown import simulated_rows, write_jsonl, write_parquet

SPEC = """
incumbent: old
candidates: [new]
segment_by: [region]
traffic: {monthly_interactions: 1000000, shares: {emea: 0.3, na: 0.5, apac: 0.2}}
seed: 3
dimensions:
  correctness: {signal: correct, margin: 0.03}
  fluency: {signal: score, bins: 3, margin: 0.05, required: false, errors: exclude}
"""
FAST = ["--draws", "100", "--warmup", "100", "--chains", "2", "--no-store-labels", "--next", "10"]


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    p = tmp_path / "migration.yaml"
    p.write_text(SPEC)
    return p


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "label_by"} for r in simulated_rows(600, seed=2)]


def _assess(spec_path: Path, out: Path, *args: str) -> int:
    return run(["assess", "--spec", str(spec_path), "--json", str(out), *FAST, *args])


def test_duckdb_engine_decides_as_python(
    spec_path: Path, rows: list[dict[str, Any]], tmp_path: Path, capsys: Any
) -> None:
    path = write_parquet(tmp_path / "r.parquet", rows)
    rc = _assess(spec_path, tmp_path / "a.json", "--records", str(path), "--engine", "duckdb", "--show-sql")
    out = capsys.readouterr().out
    assert "GROUP BY" in out and "read_parquet(" in out and "count tables by a GROUP BY over" in out
    assert _assess(spec_path, tmp_path / "b.json", "--records", str(path), "--engine", "python") == rc
    assert rc in (0, 1, 3)
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())
    # auto: a small file is read by the Python engine (nothing counted in DuckDB)
    _assess(spec_path, tmp_path / "c.json", "--records", str(path), "--engine", "auto")
    assert "GROUP BY" not in capsys.readouterr().out


def test_unsupported_falls_back_with_a_note(
    spec_path: Path, rows: list[dict[str, Any]], tmp_path: Path, capsys: Any
) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [*rows, dict(rows[0], sample=1)])
    rc = _assess(spec_path, tmp_path / "a.json", "--records", str(path), "--engine", "duckdb")
    err = capsys.readouterr().err
    assert rc in (0, 1, 3)
    assert "note: --engine duckdb: repeated samples" in err and "using --engine python" in err
    assert json.loads((tmp_path / "a.json").read_text())["verdict"]


@pytest.mark.parametrize(
    "odd, message",
    [
        ({"sample": -1}, "field 'sample' must be a whole number"),
        ({"weight": -2.0}, "field 'weight' must be a finite number >= 0"),
    ],
)
def test_a_row_the_python_engine_rejects_is_rejected_the_same_way(
    spec_path: Path, rows: list[dict[str, Any]], tmp_path: Path, capsys: Any, odd: dict[str, Any], message: str
) -> None:
    """An unlabelled row with a bad sample or weight is never counted by SQL: the Python engine reports it."""
    unlabelled = next(i for i, r in enumerate(rows) if not r.get("labels"))
    bad = [dict(r, **odd) if i == unlabelled else r for i, r in enumerate(rows)]
    for path in (write_jsonl(tmp_path / "r.jsonl", bad), write_parquet(tmp_path / "r.parquet", bad)):
        assert _assess(spec_path, tmp_path / "a.json", "--records", str(path), "--engine", "duckdb") == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_tables_file_gives_the_same_decision(spec_path: Path, rows: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    tables = tmp_path / "tables.csv"
    rc = _assess(
        spec_path, tmp_path / "p.json", "--records", str(path), "--engine", "python", "--write-tables", str(tables)
    )
    assert tables.read_text().startswith("candidate,dimension,segment,incumbent.correct,")
    assert _assess(spec_path, tmp_path / "t.json", "--tables", str(tables)) == rc
    got, want = (json.loads((tmp_path / f"{x}.json").read_text()) for x in "tp")
    assert got["verdict"] == want["verdict"]
    for name, dim in want["candidates"]["new"]["dimensions"].items():  # same tables, same seed: same posterior
        mine = got["candidates"]["new"]["dimensions"][name]
        assert (mine["overall"], mine["segments"], mine["verdict"]) == (dim["overall"], dim["segments"], dim["verdict"])
        assert (mine["labelled"], mine["known_failures"]) == (dim["labelled"], dim["known_failures"])
    assert got["next_labels"] == []  # tables name no items


def test_tables_jsonl_nested_columns(spec_path: Path, rows: list[dict[str, Any]], tmp_path: Path) -> None:
    spec = load_spec(spec_path)
    cells = table_rows(pushdown.from_file(spec, write_jsonl(tmp_path / "r.jsonl", rows)).prepared.comparisons)
    nested = []
    for c in cells:
        row: dict[str, Any] = {}
        for k, v in c.items():
            head, dot, tail = k.partition(".")
            if dot and head != "candidate":  # "candidate" is a column too: its signals stay flat
                row.setdefault(head, {})[tail] = v
            else:
                row[k] = v
        nested.append(row)
    from changeover.assessment.pushdown_tables import read_tables

    flat = read_tables(spec, write_csv(tmp_path / "t.csv", cells))
    deep = read_tables(spec, write_jsonl(tmp_path / "t.jsonl", nested))
    for key, comp in flat.comparisons.items():
        assert (comp.table.n == deep.comparisons[key].table.n).all()
        assert comp.table.items == deep.comparisons[key].table.items == comp.paired_items


def write_csv(path: Path, cells: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(dict.fromkeys(k for r in cells for k in r)))
        writer.writeheader()
        writer.writerows(cells)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(n="many"), "t.csv:2: field 'n': expected a whole number >= 0, got 'many'"),
        (lambda r: r.update({"incumbent.correct": 5}), "t.csv:2: field 'incumbent.correct': a level of signal"),
        (lambda r: r.update(candidate="nope"), "t.csv:2: field 'candidate': 'nope' is not a candidate"),
        (lambda r: r.update(incumbent_pos=3, incumbent_tot=1), "t.csv:2: field 'incumbent_pos': 3 said acceptable"),
    ],
)
def test_bad_tables_name_file_line_and_column(
    spec_path: Path, rows: list[dict[str, Any]], tmp_path: Path, capsys: Any, change: Any, message: str
) -> None:
    spec = load_spec(spec_path)
    cells = table_rows(pushdown.from_file(spec, write_jsonl(tmp_path / "r.jsonl", rows)).prepared.comparisons)
    change(cells[0])
    rc = run(["assess", "--spec", str(spec_path), "--tables", str(write_csv(tmp_path / "t.csv", cells))])
    assert rc == 2
    assert message in capsys.readouterr().err.replace(str(tmp_path) + "/", "")


def test_without_duckdb_the_python_engine_decides(
    spec_path: Path, rows: list[dict[str, Any]], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "duckdb", None)  # `import duckdb` now fails, as when it is not installed
    assert not pushdown.available()
    path = write_parquet(tmp_path / "r.parquet", rows)
    with pytest.raises(pushdown.Unsupported, match="DuckDB is not installed"):
        pushdown.from_file(load_spec(spec_path), path)
    rc = _assess(spec_path, tmp_path / "a.json", "--records", str(path), "--engine", "duckdb")
    assert rc in (0, 1, 3)
    assert "DuckDB is not installed" in capsys.readouterr().err
    assert json.loads((tmp_path / "a.json").read_text())["verdict"]


def test_a_cut_parquet_file_is_an_error_naming_it(spec_path: Path, tmp_path: Path, capsys: Any) -> None:
    """DuckDB cannot read it (a note, then the Python engine), and neither can pyarrow: exit 2, no traceback."""
    path = tmp_path / "cut.parquet"
    path.write_bytes(b"PAR1" + b"\0" * 64)  # the header of a Parquet file, no footer
    for engine in ("duckdb", "python"):
        assert _assess(spec_path, tmp_path / "a.json", "--records", str(path), "--engine", engine) == 2
        err = capsys.readouterr().err
        assert f"{path}: cannot be read as Parquet" in err and "Traceback" not in err
        assert ("DuckDB could not read it" in err) == (engine == "duckdb")
    assert not (tmp_path / "a.json").exists()
