"""CLI commands ``changeover traffic ...``: bring logged traffic from where it lives into the traffic format."""

from __future__ import annotations

import typer

traffic_app = typer.Typer(
    help="Logged traffic from where it lives (provider logs, traces, eval files) into changeover's traffic JSONL.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add `changeover traffic ...` to the main app."""
    app.add_typer(traffic_app, name="traffic")
