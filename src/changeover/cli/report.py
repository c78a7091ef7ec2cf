"""CLI commands for the report feature (registered by `changeover.cli`)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this feature's commands to the main app (none yet)."""
