"""CLI commands for the labelling app: ``label serve``, ``links``, ``rotate``, ``revoke``, ``export`` and ``import``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO

import typer

from changeover.cli.common import DB_OPTION, console
from changeover.errors import ChangeoverError

label_app = typer.Typer(
    help="Human labels: the annotation web app, and labels in and out as files.", no_args_is_help=True
)

IMPORT_SPEC_HELP = "Check dimensions against this spec (and read wide CSV columns named after them)."
ROTATE_HELP = "Give this annotator a new token (the old link stops working); its link is printed once."
SPEC_OPTION = typer.Option(..., "--spec", help="The migration spec (YAML): dimensions and rubrics.")
ACTOR_OPTION = typer.Option(None, "--actor", help="Who does this (default: $CHANGEOVER_ACTOR or the login name).")
BASE_URL_OPTION = typer.Option("http://127.0.0.1:8400", "--base-url", help="The app's address for annotators.")


def _actor(actor: str | None) -> str:
    import getpass
    import os

    return actor or os.environ.get("CHANGEOVER_ACTOR") or getpass.getuser()


def _print_accounts(accounts: list, base_url: str) -> None:
    """A login link for every account whose token was just made; the others by name only."""
    console.print("[bold]Login links[/] (each one is a password: send it only to its annotator; shown once)")
    for a in accounts:
        if a.token:
            line = f"  {a.name:<16} {a.role:<10} {base_url}/login?token={a.token}"
        elif a.active:
            line = f"  {a.name:<16} {a.role:<10} (link sent before; 'changeover label rotate {a.name}' makes a new one)"
        else:
            line = (
                f"  {a.name:<16} {'revoked':<10} ({a.revoked_reason}; 'changeover label rotate {a.name}' restores it)"
            )
        console.print(line, highlight=False, soft_wrap=True, markup=False)


def _links(
    db: str | None, spec_path: Path, base_url: str, rotate: list[str] | None = None, actor: str | None = None
) -> None:
    from changeover.config import load_spec
    from changeover.labeling.accounts import ensure_accounts
    from changeover.labeling.accounts import rotate as rotate_token
    from changeover.labeling.config import labeling_config
    from changeover.store import open_store

    spec = load_spec(spec_path)
    cfg = labeling_config(spec)
    who = _actor(actor)
    with open_store(db) as store:
        accounts = {a.name: a for a in ensure_accounts(store, cfg.annotators, who)}
        for name in rotate or []:
            if name not in accounts:
                raise ChangeoverError(f"--rotate {name!r}: no such annotator; add it to 'labeling.annotators'")
            accounts[name] = rotate_token(store, name, who)
    _print_accounts(list(accounts.values()), base_url)


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
    actor: str | None = ACTOR_OPTION,
) -> None:
    """Serve the labelling app; print the login link of every new (or rotated) annotator.

    An annotator no longer in the spec's labeling.annotators is revoked.

    Example: changeover label serve --spec migration.yaml --port 8400
    """
    import uvicorn

    from changeover.config import load_spec
    from changeover.labeling import LabelingService, create_app
    from changeover.store import open_store

    base = (public_url or f"http://{host}:{port}").rstrip("/")
    _links(db, spec, base, rotate, actor)
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
    base_url: str = BASE_URL_OPTION,
    rotate: list[str] = typer.Option(None, "--rotate", help=ROTATE_HELP),
    actor: str | None = ACTOR_OPTION,
) -> None:
    """Create the spec's accounts (revoking removed ones) and print the links of new or rotated ones.

    Example: changeover label links --spec migration.yaml --base-url https://label.example.com
    """
    _links(db, spec, base_url.rstrip("/"), rotate, actor)


@label_app.command("rotate")
def rotate_cmd(
    name: str = typer.Argument(..., help="The annotator (or 'admin')."),
    db: str | None = DB_OPTION,
    base_url: str = BASE_URL_OPTION,
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the event log)."),
    actor: str | None = ACTOR_OPTION,
) -> None:
    """Give one annotator a new token and print its login link once (the old link stops working).

    Example: changeover label rotate alice --base-url https://label.example.com
    """
    from changeover.labeling.accounts import rotate
    from changeover.store import open_store

    with open_store(db) as store:
        account = rotate(store, name, _actor(actor), reason)
    _print_accounts([account], base_url.rstrip("/"))


@label_app.command("revoke")
def revoke_cmd(
    name: str = typer.Argument(..., help="The annotator whose token stops working now."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the event log)."),
    db: str | None = DB_OPTION,
    actor: str | None = ACTOR_OPTION,
) -> None:
    """Revoke one annotator's token now; their labels stay. 'label rotate NAME' restores access.

    Example: changeover label revoke carol --reason "left the project"
    """
    from changeover.labeling.accounts import revoke
    from changeover.store import open_store

    with open_store(db) as store:
        account = revoke(store, name, _actor(actor), reason)
    console.print(f"revoked {account.name}: {reason}", highlight=False, markup=False)


@label_app.command("export")
def export(
    fmt: str = typer.Option("csv", "--format", help="csv or jsonl."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
    quality: bool = typer.Option(
        False, "--quality", help="One row per annotator instead: agreement with gold and with the consensus."
    ),
    spec: Path | None = typer.Option(None, "--spec", help="The migration spec (needed by --quality: its gold)."),
    db: str | None = DB_OPTION,
) -> None:
    """Write every label (corrections, skips, flags and gold checks included; see 'in_force') as CSV or JSONL.

    Example: changeover label export --format csv > labels.csv
    Example: changeover label export --quality --spec migration.yaml
    """
    from changeover.labeling.export import FORMATS, write_labels, write_quality
    from changeover.store import open_store

    if fmt not in FORMATS:
        raise ChangeoverError(f"--format {fmt!r}: use csv or jsonl")
    if quality and spec is None:
        raise ChangeoverError("--quality needs --spec (the spec's labeling.gold names the gold answers)")
    what = "annotator rows" if quality else "label rows"
    with open_store(db) as store:
        if quality:
            from changeover.config import load_spec
            from changeover.labeling import LabelingService

            assert spec is not None
            per = LabelingService(store, load_spec(spec)).quality()
            write: Callable[[IO[str]], int] = partial(write_quality, per, fmt)
        else:
            write = partial(write_labels, store, fmt)
        if output is None:
            write(sys.stdout)
            sys.stdout.flush()
            return
        tmp = output.with_name(output.name + ".tmp")
        try:
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                n = write(fh)
            tmp.replace(output)
        except OSError as exc:
            raise ChangeoverError(
                f"--output {output}: cannot write it ({exc.strerror or exc}); choose another path"
            ) from None
    console.print(f"wrote {n} {what} to {output}")


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
