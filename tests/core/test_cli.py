"""The command line: exit codes, JSON output, clear errors without tracebacks, import and demo."""

import json

from changeover.cli import run
from changeover.stats.simulate import Scenario

from .conftest import scenario_records, write_jsonl


def test_assess_go_writes_json_and_exits_0(tmp_path, spec_path, capsys):
    sc = Scenario("better", [0.7, 0.75], [0.85, 0.9], items_per_segment=200, labels_per_segment=40)
    records = write_jsonl(tmp_path / "r.jsonl", scenario_records(sc, 1))
    out = tmp_path / "decision.json"
    rc = run(
        [
            "assess",
            "--spec",
            str(spec_path),
            "--records",
            str(records),
            "--json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert json.loads(out.read_text())["verdict"] == "GO"
    assert "cand: GO" in text and "verdict: GO" in text


def test_assess_no_go_exits_1_and_need_labels_exits_3(tmp_path, spec_path):
    worse = Scenario("worse", [0.85, 0.85], [0.65, 0.7], items_per_segment=200, labels_per_segment=40)
    rc = run(
        [
            "assess",
            "--spec",
            str(spec_path),
            "--records",
            str(write_jsonl(tmp_path / "w.jsonl", scenario_records(worse, 2))),
        ]
    )
    assert rc == 1
    equal = Scenario("equal", [0.8, 0.8], [0.8, 0.8], items_per_segment=150, labels_per_segment=5)
    rc = run(
        [
            "assess",
            "--spec",
            str(spec_path),
            "--records",
            str(write_jsonl(tmp_path / "e.jsonl", scenario_records(equal, 3))),
        ]
    )
    assert rc == 3


def test_bad_input_exits_2_without_traceback(tmp_path, spec_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"item": "a", "model": "legacy"}\n{"item": "b", "model": "legacy", "labels": {"x": 5}}\n')
    rc = run(["assess", "--spec", str(spec_path), "--records", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "bad.jsonl:2: field 'labels.x'" in err and "Traceback" not in err
    (tmp_path / "spec.yaml").write_text("incumbent: a\ncandidates: []\ndimensions: {c: {}}\n")
    rc = run(["assess", "--spec", str(tmp_path / "spec.yaml"), "--records", str(bad)])
    assert rc == 2 and "field 'candidates'" in capsys.readouterr().err


def test_import_then_assess_from_the_store(tmp_path, spec_path, store_url, capsys):
    sc = Scenario("worse", [0.85, 0.85], [0.65, 0.7], items_per_segment=120, labels_per_segment=30)
    records = write_jsonl(tmp_path / "r.jsonl", scenario_records(sc, 7))
    assert run(["import", str(records), "--db", store_url]) == 0
    assert run(["import", str(records), "--db", store_url]) == 0
    out = capsys.readouterr().out
    assert "480 added" in out and "0 added, 480 already stored" in out
    assert run(["assess", "--spec", str(spec_path), "--db", store_url, "--draws", "150"]) == 1


def test_demo_runs_offline_and_tells_the_judge_story(tmp_path, capsys):
    rc = run(["demo", "--out", str(tmp_path / "demo")])
    text = capsys.readouterr().out
    assert rc in (0, 1, 3)
    decision = json.loads((tmp_path / "demo" / "decision.json").read_text())
    assert set(decision["candidates"]) == {"gpt4", "mistralguard"}
    assert "judge alone" in text and "all 450 human labels" in text
    assert (tmp_path / "demo" / "changeover.db").exists()


def test_help_teaches_with_examples(capsys):
    assert run(["assess", "--help"]) == 0
    text = capsys.readouterr().out
    assert "Example: changeover assess" in text and "incumbent: legacy-model" in text


def test_unwritable_json_output_is_a_clear_error(tmp_path, spec_path, capsys):
    sc = Scenario("x", [0.8], [0.8], items_per_segment=40, labels_per_segment=10)
    records = write_jsonl(tmp_path / "r.jsonl", scenario_records(sc, 9))
    (tmp_path / "file").write_text("not a folder")
    rc = run(
        [
            "assess",
            "--spec",
            str(spec_path),
            "--records",
            str(records),
            "--draws",
            "60",
            "--warmup",
            "60",
            "--json",
            str(tmp_path / "file" / "decision.json"),
        ]
    )
    assert rc == 2 and "cannot write the decision JSON" in capsys.readouterr().err
