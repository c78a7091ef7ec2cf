"""CLI command ``changeover scan``: which models a codebase uses and when they shut down."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from changeover.cli.common import console, write_json

SCAN_HELP = """Find the model ids a codebase uses and when their providers shut them down.

Reads string literals in Python, JS/TS, Go, Java, Kotlin, C#, Swift and Terraform, values
in YAML, JSON, TOML, .env/INI files and Jupyter notebook code cells, and joins each model id
with the bundled, dated lifecycle registry (extend or override it with --registry). The
registry's dates were read from the providers' pages at the date each row names: verify
before planning (see docs/scan.md).

Exit code: 1 when a model in use shuts down within --within (or already has), 0 otherwise,
2 on bad input.

Example: changeover scan . --within 90d --json scan.json
"""


def _today(text: str | None) -> date:
    from changeover.scan import ScanError

    if text is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ScanError(f"--today: expected a date YYYY-MM-DD, got {text!r}") from None


def _days(left: int | None, within: int) -> str:
    if left is None:
        return ""
    if left < 0:
        return f"[bold red]{left}[/]"
    return f"[red]{left}[/]" if left <= within else str(left)


def register(app: typer.Typer) -> None:
    """Add `changeover scan` to the main app."""

    @app.command("scan", help=SCAN_HELP)
    def scan_cmd(
        path: Path = typer.Argument(Path("."), help="Folder (or file) to scan."),
        within: str = typer.Option(
            "90d", "--within", help="Fail (exit 1) when a shutdown is this close: 90d, 12w, 6m."
        ),
        registry: list[Path] = typer.Option(
            [], "--registry", "-r", help="Team registry YAML merged over the bundled one (repeatable)."
        ),
        exclude: list[str] = typer.Option(
            [], "--exclude", "-x", help="Skip paths matching this glob (relative to PATH; repeatable): 'tests/*'."
        ),
        today: str | None = typer.Option(None, "--today", help="Compare dates against this day (YYYY-MM-DD)."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the findings as JSON here."),
        show_all: bool = typer.Option(False, "--all", help="List every use, not only the first."),
    ) -> None:
        from changeover.scan import load_registry, parse_within, scan_codebase

        days = parse_within(within)
        day = _today(today)
        result = scan_codebase(path, load_registry(registry), day, days, tuple(exclude))
        files = f"{result.files_scanned} file{'' if result.files_scanned == 1 else 's'} scanned"
        table = Table(
            title=escape(f"model ids in {path} ({files}), as of {day.isoformat()}"),
            title_justify="left",
        )
        table.add_column("model", overflow="fold")
        table.add_column("provider", no_wrap=True)
        table.add_column("used at", overflow="fold")
        table.add_column("deprecated", no_wrap=True)
        table.add_column("shutdown", no_wrap=True)
        table.add_column("days", justify="right", no_wrap=True)
        table.add_column("successors", overflow="fold")
        for u in result.usages:
            life = u.lifecycle
            first = "\n".join(x.where for x in u.uses) if show_all else u.uses[0].where
            more = f" (+{len(u.uses) - 1})" if len(u.uses) > 1 and not show_all else ""
            table.add_row(  # paths and ids are the codebase's, not markup: app/[id]/page.tsx stays as it is
                escape(u.model),
                escape(u.provider),
                escape(first) + more,
                life.deprecated.isoformat() if life and life.deprecated else "",
                life.shutdown.isoformat() if life and life.shutdown else "",
                _days(u.days_left(day), days),
                escape(", ".join(life.successors)) if life else "[dim]not in registry[/]",
            )
        console.print(table)
        due = result.due
        if due:
            console.print(
                f"[bold red]{len(due)} model(s) shut down within {days} days or already have:[/] "
                + escape(", ".join(f"{u.model} ({u.provider})" for u in due)),
                highlight=False,
            )
        else:
            console.print(f"nothing in use shuts down within {days} days", highlight=False)
        if result.unread:
            shown = ", ".join(f"{f} ({why})" for f, why in result.unread[:5])
            more = f" and {len(result.unread) - 5} more" if len(result.unread) > 5 else ""
            console.print(f"[yellow]{len(result.unread)} file(s) not read:[/] {escape(shown)}{more}", highlight=False)
        console.print(
            "[dim]registry rows are dated (see --json 'checked' and 'source'); verify a date at its source[/]",
            highlight=False,
        )
        if json_out is not None:
            write_json(result.to_dict(), json_out)
        if due:
            raise typer.Exit(1)
