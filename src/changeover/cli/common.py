"""Shared CLI pieces: consoles, the --db option, JSON output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from changeover.errors import ChangeoverError

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
    """Write ``obj`` as pretty JSON, atomically (temp file + rename) when ``path`` is a regular file.

    A path that exists and is not a regular file (``/dev/stdout``, a pipe) is written in place: renaming
    over it would replace the device with a file.
    """
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    try:
        if path.exists() and not path.is_file():
            with path.open("w", encoding="utf-8") as out:
                out.write(text)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ChangeoverError(
            f"{path}: cannot write the JSON output ({exc.strerror}); choose a writable path"
        ) from None


def load_assessment_records(
    migration: Any, records: Path | None, db: str | None, store_labels: bool = True
) -> tuple[list[Any], int | None]:
    """The records a decision reads: a file (with the store's human labels merged unless told not to) or the store.

    Returns the records and how many store labels were merged into a file's records
    (None when the store was not consulted, 0 when it had none for them). With a file,
    the store is consulted when named (``--db`` / ``CHANGEOVER_DB``) or when the default one exists.
    """
    from changeover.errors import DataError
    from changeover.records import read_records
    from changeover.store import open_store
    from changeover.store.engine import DEFAULT_DB
    from changeover.store.responses import load_records, merge_store_labels

    if records is not None:
        recs = read_records(records)
        if not store_labels or not (db or Path(DEFAULT_DB).exists()):  # never create a store for nothing
            return recs, None
        with open_store(db) as store:
            return recs, merge_store_labels(store, recs)
    with open_store(db) as store:
        recs = load_records(store, migration.models)
        if not recs:
            raise DataError(
                f"the store ({store.display_url}) holds no records for {migration.models}; "
                "run `changeover import FILE` first or pass --records FILE"
            )
    return recs, None
