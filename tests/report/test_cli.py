"""`changeover report`: files written, user errors reported with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from changeover.cli import report as cli_report
from changeover.cli import run
from changeover.records import write_records


def _write_project(tmp_path: Path, records) -> tuple[Path, Path]:
    raw = {
        "incumbent": "legacy-model",
        "candidates": ["cand-a", "cand-b"],
        "segment_by": ["region"],
        "traffic": {"monthly_interactions": 5_300_000, "shares": {"emea": 0.3, "na": 0.5, "apac": 0.2}},
        "dimensions": {
            "correctness": {"margin": 0.02},
            "refusal": {"margin": 0.005},
            "style": {"margin": 0.03, "levels": 5},
        },
    }
    spec_path = tmp_path / "migration.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    records_path = tmp_path / "records.jsonl"
    write_records(records, records_path)
    return spec_path, records_path


def test_report_command_writes_html_markdown_and_json(tmp_path, records, assessment, monkeypatch):
    spec_path, records_path = _write_project(tmp_path, records)
    seen = {}

    def fake_assess(spec, recs, seed, draws, store_labels=None, progress=None):
        seen.update(n=len(recs), seed=seed)
        return assessment

    monkeypatch.setattr(cli_report, "run_assessment", fake_assess)
    out = tmp_path / "site" / "report.html"
    code = run(
        [
            "report",
            "--spec",
            str(spec_path),
            "--records",
            str(records_path),
            "--out",
            str(out),
            "--markdown",
            str(tmp_path / "summary.md"),
            "--json",
            str(tmp_path / "report.json"),
            "--db",
            f"sqlite:///{tmp_path / 'c.db'}",
            "--seed",
            "11",
        ]
    )
    assert code == 0
    assert seen == {"n": len(records), "seed": 11}
    html = out.read_text()
    assert "<svg" in html and str(records_path) in html  # the records file is fingerprinted
    assert (tmp_path / "summary.md").read_text().startswith("### ")
    assert json.loads((tmp_path / "report.json").read_text())["verdict"] == assessment.verdict


def test_report_command_user_errors(tmp_path, records, assessment, monkeypatch, capsys):
    monkeypatch.setattr(cli_report, "run_assessment", lambda *a: assessment)
    assert run(["report", "--spec", str(tmp_path / "nope.yaml")]) == 2
    assert "no such spec file" in capsys.readouterr().err

    spec_path, records_path = _write_project(tmp_path, records)
    assert (
        run(
            [
                "report",
                "--spec",
                str(spec_path),
                "--db",
                f"sqlite:///{tmp_path / 'empty.db'}",
                "--out",
                str(tmp_path / "r.html"),
            ]
        )
        == 2
    )
    assert "holds no responses" in capsys.readouterr().err

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert run(["report", "--spec", str(spec_path), "--records", str(empty), "--out", str(tmp_path / "r.html")]) == 2
    assert "empty.jsonl: holds no responses" in capsys.readouterr().err.replace("\n", "")

    assert (
        run(
            [
                "report",
                "--spec",
                str(spec_path),
                "--records",
                str(records_path),
                "--embeddings",
                str(tmp_path),
                "--out",
                str(tmp_path / "r.html"),
                "--db",
                f"sqlite:///{tmp_path / 'c.db'}",
            ]
        )
        == 2
    )
    assert "cannot be read as JSON text" in capsys.readouterr().err

    bad = tmp_path / "compare.json"
    bad.write_text('{"k": 10}')
    assert (
        run(
            [
                "report",
                "--spec",
                str(spec_path),
                "--records",
                str(records_path),
                "--embeddings",
                str(bad),
                "--out",
                str(tmp_path / "r.html"),
                "--db",
                f"sqlite:///{tmp_path / 'c.db'}",
            ]
        )
        == 2
    )
    assert "holds no top-k overlaps" in capsys.readouterr().err


def test_report_command_end_to_end_on_the_demo_data(tmp_path, capsys):
    """The real core assesses the bundled XSTest migration; the report is written from it."""
    from changeover import demo

    spec_path, records_path = demo.write_inputs(demo.prepare(labels=120, seed=7), tmp_path)
    out = tmp_path / "report.html"
    code = run(
        [
            "report",
            "--spec",
            str(spec_path),
            "--records",
            str(records_path),
            "--out",
            str(out),
            "--markdown",
            str(tmp_path / "summary.md"),
            "--db",
            f"sqlite:///{tmp_path / 'c.db'}",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "report written to" in printed
    html = out.read_text()
    assert "Replacing llama2orig" in html and "mistralguard" in html
    assert str(records_path) in html and "sha256" in html  # file fingerprint in the appendix
    assert "The judge is kinder to mistralguard" in html
