"""CLI command for the report feature: `changeover report` (registered by `changeover.cli`)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from changeover.assessment.objectstore import records_path as records_location
from changeover.cli.common import DB_OPTION, console, err_console, existing_store, print_merged, records_with_labels
from changeover.config import MigrationSpec, load_spec
from changeover.errors import DataError, SpecError
from changeover.records import Record

if TYPE_CHECKING:
    from changeover.assessment import Assessment
    from changeover.report.shadow import ShadowStats


def run_assessment(
    spec: MigrationSpec,
    records: list[Record],
    seed: int | None,
    draws: int | None,
    store_labels: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Assessment:
    """Assess the records (the report needs the posterior draws, not just the JSON)."""
    from changeover.assessment import assess

    kwargs: dict[str, Any] = {"seed": seed, "store_labels": store_labels, "progress": progress}
    if draws is not None:
        kwargs["draws"] = draws
    return assess(spec, records, **kwargs)


def _embedding_input(path: Path | None):
    if path is None:
        return None
    from changeover.report.embeddings import from_comparison

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{path}: no such file; give the JSON written by `changeover embeddings compare --json`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, not text
        raise DataError(f"{path}: cannot be read as JSON text ({getattr(exc, 'strerror', None) or exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    stats = from_comparison(data) if isinstance(data, dict) else None
    if stats is None:
        raise DataError(
            f"{path}: holds no top-k overlaps ('histogram' or 'overlap'); give the JSON written "
            "by `changeover embeddings compare --json`"
        )
    return stats


def _shadow_input(spec: MigrationSpec, store: Any, since: str | None) -> ShadowStats | None:
    """The shadow section from the gateway's answers of the last ``since`` (None: left to the report)."""
    if since is None:
        return None
    from datetime import timedelta

    from changeover.report.config import ReportConfig
    from changeover.report.shadowlog import shadow_log_stats
    from changeover.rollout.config import parse_duration
    from changeover.store.events import now

    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise SpecError(f"--shadow-since: {exc}") from None
    examples = (spec.section("report", ReportConfig) or ReportConfig()).max_examples
    start = now() - timedelta(seconds=seconds)
    stats = shadow_log_stats(store, spec, examples, since=start) if store is not None else None
    if stats is None:
        where = "no store was read" if store is None else f"the store at {store.display_url} holds no mirrored pairs"
        raise DataError(
            f"--shadow-since {since}: {where} since {start:%Y-%m-%d %H:%M} UTC; "
            "give the gateway's store (--db) or a longer stretch, or drop the option"
        )
    return stats


def report(
    spec_path: Path = typer.Option(Path("migration.yaml"), "--spec", "-s", help="The migration spec (YAML)."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="Where to write the HTML report."),
    markdown: Path | None = typer.Option(
        None, "--markdown", "-m", help="Also write a Markdown summary (fits a PR comment)."
    ),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the report's data as JSON."),
    records_path: Path | None = typer.Option(
        None, "--records", "-r", parser=records_location, help="Records file (JSONL/CSV/Parquet); default: the store."
    ),
    embeddings: Path | None = typer.Option(None, "--embeddings", help="Embedding comparison JSON to include."),
    seed: int | None = typer.Option(None, help="Sampler seed (default: the spec's `seed`)."),
    draws: int | None = typer.Option(None, min=50, help="Posterior draws per chain."),
    db: str | None = DB_OPTION,
    store_labels: bool = typer.Option(
        True,
        "--store-labels/--no-store-labels",
        help="With --records: also use the human labels in the store (labelling app, `label import`).",
    ),
    shadow_since: str | None = typer.Option(
        None, "--shadow-since", help="Shadow section: only the gateway's answers of this last stretch (30m, 24h, 7d)."
    ),
) -> None:
    """Write the migration report: one self-contained HTML page with the verdict, its reasons and
    the evidence (posteriors, forest plots, judge calibration, labels, shadow, rollout, embeddings).

    Example:

        changeover report --spec migration.yaml --records records.jsonl --out report.html --markdown summary.md

    Without --records the responses come from the store (--db / CHANGEOVER_DB), which also gives
    annotator names, the gateway's shadow log (the shadow section; --shadow-since narrows it), the
    rollout timeline and embedding results. With --records, the human labels in
    the store are merged in (--no-store-labels: only the file's).
    """
    from changeover.assessment import ConvergenceWarning
    from changeover.report import ReportInputs, write_report

    spec = load_spec(spec_path)
    store = existing_store(db, records_path)
    try:
        shadow = _shadow_input(spec, store, shadow_since)  # a wrong option fails before the assessment
        labelled = store if (store_labels or records_path is None) else None
        records, merged, merged_from = records_with_labels(spec, records_path, labelled)
        print_merged(merged, merged_from, records_path)
        with console.status("assessing ...") as status, warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # printed below, once
            assessment = run_assessment(spec, records, seed, draws, merged, status.update)
        for w in getattr(assessment, "warnings", []):
            err_console.print(f"[yellow]warning:[/] {w}")
        inputs = ReportInputs(embeddings=_embedding_input(embeddings), shadow=shadow)
        path = write_report(
            assessment,
            spec,
            out,
            markdown=markdown,
            store=store,
            json_path=json_path,
            records=records,
            inputs=inputs,
            files=[p for p in (spec_path, records_path) if p is not None],
        )
    finally:
        if store is not None:
            store.dispose()
    console.print(f"[bold]{assessment.verdict}[/] — report written to {path}", highlight=False)
    for extra in (markdown, json_path):
        if extra is not None:
            console.print(f"  also {extra}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `changeover report` to the main app."""
    app.command("report")(report)
