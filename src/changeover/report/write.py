"""Write a report's files: the HTML page, and optionally the Markdown summary and the JSON.
Each file is written to a temporary name and renamed, so a reader never sees half a file."""

from __future__ import annotations

import json
from pathlib import Path

from changeover.config import MigrationSpec
from changeover.errors import ChangeoverError
from changeover.records import Record
from changeover.report.build import build_report
from changeover.report.inputs import ReportInputs
from changeover.report.results import AssessmentLike
from changeover.store import Store
from changeover.textfiles import write_atomic


class ReportError(ChangeoverError):
    """A report file cannot be written where the user asked."""


def _write(path: Path, text: str, what: str) -> None:
    write_atomic(path, text, f"the {what}", ReportError)


def write_report(
    assessment: AssessmentLike,
    spec: MigrationSpec,
    out_html: str | Path,
    markdown: str | Path | None = None,
    store: Store | None = None,
    *,
    json_path: str | Path | None = None,
    records: list[Record] | None = None,
    inputs: ReportInputs | None = None,
    files: list[Path] | None = None,
) -> Path:
    """Build the report and write it; returns the HTML file's path.

    ``store`` (optional) adds annotator names, the rollout timeline and embedding results;
    ``inputs`` hands in section inputs directly (they win over what the store holds).
    """
    out_html = Path(out_html)
    report = build_report(assessment, spec, records, store=store, inputs=inputs, files=files)
    _write(out_html, report.html(), "HTML report")
    if markdown is not None:
        _write(Path(markdown), report.markdown(out_html.name), "Markdown summary")
    if json_path is not None:
        text = json.dumps(report.to_json(), indent=2, ensure_ascii=False, default=str) + "\n"
        _write(Path(json_path), text, "report JSON")
    return out_html
