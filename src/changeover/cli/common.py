"""Shared CLI pieces: consoles, the --db option, JSON output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from changeover.textfiles import write_atomic

# Piped output (CI logs, README transcripts) gets 120 columns instead of rich's 80.
_WIDTH = int(os.environ.get("COLUMNS", "0") or 0) or (None if sys.stdout.isatty() else 120)
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)

DB_OPTION = typer.Option(
    None,
    "--db",
    envvar="CHANGEOVER_DB",
    help="Store URL or SQLite file path (default: .changeover/changeover.db). "
    "PostgreSQL: postgresql+psycopg://user@host/db",
)


def write_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as pretty JSON, atomically (``textfiles.write_atomic``)."""
    write_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", "the JSON output")


def existing_store(db: str | None, records_path: Path | None = None) -> Any:
    """The store (a ``Store``) when asked for (--db / CHANGEOVER_DB), needed for records, or already
    there; None otherwise (never created for nothing)."""
    from changeover.store import DEFAULT_DB, open_store

    if db or records_path is None or Path(DEFAULT_DB).exists():
        return open_store(db)
    return None


def load_assessment_records(
    migration: Any, records: Path | None, db: str | None, store_labels: bool = True
) -> tuple[list[Any], int | None, str | None]:
    """The records a decision reads: a file (with the store's human labels merged unless told not to) or the store.

    Returns the records, how many labels of the store's labels table (and of the spec's gold file,
    ``labeling.gold.spec_answers``) are in them (None when the store was not consulted) and the
    store's URL when they were merged into a file's records. With a file, the store is consulted when
    named (``--db`` / ``CHANGEOVER_DB``) or when the default one exists; it is never created for nothing.
    """
    from changeover.store import open_store

    store = (existing_store(db, records) if store_labels else None) if records is not None else open_store(db)
    if store is None:
        return records_with_labels(migration, records, None)
    with store:
        return records_with_labels(migration, records, store)


def records_with_labels(migration: Any, records: Path | None, store: Any) -> tuple[list[Any], int | None, str | None]:
    """A records file with ``store``'s human labels merged, or, with no file, the store's records; ``store``
    None reads the file alone. The store's labels are read as the labelling app's live fit reads them: the
    gold file's answers settled, the annotators' gold verdicts beside them. Returns (records, the store's
    labels in them or None, the store's URL when merged into a file's records)."""
    from changeover.errors import DataError
    from changeover.labeling.gold import spec_answers
    from changeover.store.responses import load_records_counted, merge_store_labels

    if records is not None:
        recs = _read_responses(records)
        if store is None:
            return recs, None, None
        return recs, merge_store_labels(store, recs, spec_answers(migration)), store.display_url
    recs, merged = load_records_counted(store, migration.models, gold=spec_answers(migration))
    if not recs:
        raise DataError(
            f"the store ({store.display_url}) holds no responses for {migration.models}; "
            "run `changeover import FILE` first or pass --records FILE"
        )
    return recs, merged, None


def _read_responses(records: Path) -> list[Any]:
    from changeover.assessment.objectstore import python_engine_refused
    from changeover.errors import DataError
    from changeover.records import read_records

    python_engine_refused(records)  # a URI: for the DuckDB engine only
    recs = read_records(records)
    if not recs:
        raise DataError(
            f"{records}: holds no responses; give the records file written by "
            "`changeover evaluate` (or exported by the gateway)"
        )
    return recs


def print_merged(merged: int | None, store_url: str | None, records: Path | None) -> None:
    """The one line saying a records file got the store's labels (assess, report and pick print it alike)."""
    if store_url is not None:
        console.print(
            f"merged {merged or 0:,} human label(s) from the store ({store_url}) into {records}; "
            "--no-store-labels leaves them out",
            highlight=False,
        )


def write_ci_outputs(decision: Any, spec: Any, records: list[Any], markdown: Path | None, junit: Path | None) -> None:
    """The CI surfaces of a decision: the Markdown summary (a PR comment) and JUnit XML, each written atomically."""
    from changeover.report.junit import decision_junit
    from changeover.report.labels import label_stats
    from changeover.report.markdown import summary_markdown
    from changeover.report.verdict import verdict_text

    if markdown is not None:
        text = summary_markdown(decision, spec, verdict_text(decision, spec), label_stats(records, spec, decision))
        write_atomic(markdown, text, "the Markdown summary")
        console.print(f"summary written to {markdown}")
    if junit is not None:
        write_atomic(junit, decision_junit(decision), "the JUnit XML")
        console.print(f"JUnit XML written to {junit}")
