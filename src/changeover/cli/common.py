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
    """Write ``obj`` as pretty JSON, atomically (temp file + rename)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ChangeoverError(
            f"{path}: cannot write the JSON output ({exc.strerror}); choose a writable path"
        ) from None
