"""CLI commands for the prompts feature: ``changeover prompts audit`` (registered by `changeover.cli`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from changeover.cli.common import console, write_json

prompts_app = typer.Typer(
    help="The prompt registry: per-model prompt variants (see docs/evaluate.md).\n\n"
    "Example: changeover prompts audit --spec migration.yaml",
    no_args_is_help=True,
)


@prompts_app.command("audit")
def audit_cmd(
    spec: Path | None = typer.Option(None, "--spec", "-s", help="Migration spec naming prompts.registry."),
    registry: Path | None = typer.Option(None, "--registry", "-r", help="Prompt registry folder (instead of --spec)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the audit as JSON here."),
) -> None:
    """List the prompts to check first when the model changes, with token counts per model variant.

    Prompts with heavy format requirements (JSON output and schemas, extraction
    templates, tool use, strict output formats) are flagged and listed first:
    they are where a new model drifts. Token counts are approximate.

    Example: changeover prompts audit --spec migration.yaml --json audit.json
    """
    from changeover.config import load_spec
    from changeover.errors import SpecError
    from changeover.prompts import Registry, audit_registry, load_registry

    if registry is not None:
        reg = Registry.load(registry)
    elif spec is not None:
        reg = load_registry(load_spec(spec))
    else:
        raise SpecError("give --spec (with a prompts: {registry: ...} section) or --registry FOLDER")
    rows = audit_registry(reg)
    table = Table(title=f"{len(reg.prompts)} prompts in {reg.folder}", title_justify="left")
    for col in ("prompt", "variant", "version", "tokens", "check first because"):
        table.add_column(col, justify="right" if col == "tokens" else "left")
    for row in rows:
        table.add_row(
            row.prompt,
            row.variant,
            row.version,
            f"{row.tokens:,}",
            f"[yellow]{', '.join(row.heavy)}[/]" if row.heavy else "",
        )
    console.print(table)
    flagged = sorted({r.prompt for r in rows if r.heavy})
    console.print(
        f"{len(flagged)} of {len(reg.prompts)} prompts have heavy format requirements"
        + (f": {', '.join(flagged)}" if flagged else "")
    )
    if json_out is not None:
        write_json({"prompts": [r.to_dict() for r in rows], "check_first": flagged}, json_out)


def register(app: typer.Typer) -> None:
    """Add `changeover prompts ...` to the main app."""
    app.add_typer(prompts_app, name="prompts")
