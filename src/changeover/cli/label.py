"""CLI commands for the labelling app: ``label serve``, ``links``, ``export`` and ``import``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from changeover.cli.common import DB_OPTION, console
from changeover.errors import ChangeoverError

label_app = typer.Typer(
    help="Human labels: the annotation web app, and labels in and out as files.", no_args_is_help=True
)

IMPORT_SPEC_HELP = "Check dimensions against this spec (and read wide CSV columns named after them)."
ROTATE_HELP = "Give this annotator a new token (the old link stops working)."
SPEC_OPTION = typer.Option(..., "--spec", help="The migration spec (YAML): dimensions and rubrics.")


def _links(db: str | None, spec_path: Path, base_url: str, rotate: list[str] | None = None) -> None:
    from changeover.config import load_spec
    from changeover.labeling.accounts import ensure_accounts
    from changeover.labeling.accounts import rotate as rotate_token
    from changeover.labeling.config import labeling_config
    from changeover.store import open_store

    spec = load_spec(spec_path)
    cfg = labeling_config(spec)
    with open_store(db) as store:
        ensure_accounts(store, cfg.annotators)
        for name in rotate or []:
            if rotate_token(store, name) is None:
                raise ChangeoverError(f"--rotate {name!r}: no such annotator; add it to 'labeling.annotators'")
        accounts = ensure_accounts(store, cfg.annotators)
    console.print("[bold]Login links[/] (each one is a password: send it only to its annotator)")
    for a in accounts:
        console.print(f"  {a.name:<16} {a.role:<10} {base_url}/login?token={a.token}", highlight=False, soft_wrap=True)


@label_app.command("serve")
def serve(
    spec: Path = SPEC_OPTION,
    db: str | None = DB_OPTION,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for your network)."),
    port: int = typer.Option(8400, help="Port to listen on."),
    public_url: str | None = typer.Option(
        None,
        help="Base URL in the links (default: http://HOST:PORT). An https URL (a TLS-terminating "
        "proxy in front) also makes the login cookie Secure.",
    ),
    rotate: list[str] = typer.Option(None, "--rotate", help=ROTATE_HELP),
) -> None:
    """Serve the labelling app and print one login link per annotator.

    Example: changeover label serve --spec migration.yaml --port 8400
    """
    import uvicorn

    from changeover.config import load_spec
    from changeover.labeling import LabelingService, create_app
    from changeover.store import open_store

    base = (public_url or f"http://{host}:{port}").rstrip("/")
    _links(db, spec, base, rotate)
    store = open_store(db)
    service = LabelingService(store, load_spec(spec))
    console.print(
        f"{len(service.catalogue)} responses to label on {', '.join(service.dimensions)}; "
        f"serving on {base} (Ctrl-C stops)"
    )
    app = create_app(service, public_url=public_url)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@label_app.command("links")
def links(
    spec: Path = SPEC_OPTION,
    db: str | None = DB_OPTION,
    base_url: str = typer.Option("http://127.0.0.1:8400", help="The app's address for annotators."),
    rotate: list[str] = typer.Option(None, "--rotate", help=ROTATE_HELP),
) -> None:
    """Print the login links (creating accounts from the spec's 'labeling.annotators').

    Example: changeover label links --spec migration.yaml --base-url https://label.example.com
    """
    _links(db, spec, base_url.rstrip("/"), rotate)


@label_app.command("export")
def export(
    fmt: str = typer.Option("csv", "--format", help="csv or jsonl."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
    db: str | None = DB_OPTION,
) -> None:
    """Write every label (corrections, skips and flags included; see 'in_force') as CSV or JSONL.

    Example: changeover label export --format csv > labels.csv
    """
    from changeover.labeling.export import FORMATS, write_labels
    from changeover.store import open_store

    if fmt not in FORMATS:
        raise ChangeoverError(f"--format {fmt!r}: use csv or jsonl")
    with open_store(db) as store:
        if output is None:
            write_labels(store, fmt, sys.stdout)
            sys.stdout.flush()
            return
        tmp = output.with_name(output.name + ".tmp")
        try:
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                n = write_labels(store, fmt, fh)
            tmp.replace(output)
        except OSError as exc:
            raise ChangeoverError(
                f"--output {output}: cannot write it ({exc.strerror or exc}); choose another path"
            ) from None
    console.print(f"wrote {n} label rows to {output}")


@label_app.command("import")
def import_(
    path: Path = typer.Argument(..., help="CSV, JSONL, or a Label Studio JSON export."),
    fmt: str = typer.Option("auto", "--format", help="auto (by extension), csv, jsonl, labelstudio."),
    annotator: str = typer.Option("imported", help="Annotator when there is no 'annotator' column."),
    spec: Path | None = typer.Option(None, "--spec", help=IMPORT_SPEC_HELP),
    db: str | None = DB_OPTION,
) -> None:
    """Import labels made elsewhere; the whole file or nothing, never twice.

    CSV long form: item,model,dimension,value[,annotator,status,created_at,client_id].
    CSV wide form: item,model[,annotator] and one column per dimension ('labels.<dimension>').
    Label Studio: a JSON export; task data hold 'item' and 'model', one 'choices' control per dimension.

    Example: changeover label import labels.csv --spec migration.yaml
    """
    from changeover.config import load_spec
    from changeover.labeling.importing import FORMATS, import_labels
    from changeover.store import open_store

    if fmt not in FORMATS:
        raise ChangeoverError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    dimensions = list(load_spec(spec).dimensions) if spec else None
    with open_store(db) as store:
        result = import_labels(store, path, fmt, annotator, dimensions)
    console.print(
        f"{result.path}: {result.rows} labels read ({result.format}), {result.added} added, "
        f"{result.rows - result.added} already stored"
    )


def register(app: typer.Typer) -> None:
    """Add the `label` command group to the main app."""
    app.add_typer(label_app, name="label")
