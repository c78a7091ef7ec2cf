"""The command line: parse, call a feature, print. No logic of its own.

Each feature registers its commands from its own module here (``assess``,
``evaluate``, ``gateway``, ``embeddings``, ``report``, ``label``, ``prompts``),
so the main app stays a table of contents.
"""

from __future__ import annotations

import sys

import click
import typer

from changeover import __version__
from changeover.cli import assess, embeddings, evaluate, gateway, label, prompts, report
from changeover.cli.common import err_console
from changeover.errors import ChangeoverError

app = typer.Typer(
    name="changeover",
    help=(
        "Replace the LLM under a running product, and know it is safe.\n\n"
        "Start with `changeover demo` (a full assessment on bundled real data), then "
        "`changeover assess --help`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        print(f"changeover {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Replace the LLM under a running product, and know it is safe."""


for module in (assess, evaluate, prompts, gateway, embeddings, label, report):
    module.register(app)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; user errors print without a traceback, exit 2."""
    try:
        rc = app(args=argv, prog_name="changeover", standalone_mode=False)
    except ChangeoverError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 130
    except SystemExit as exc:  # typer.Exit inside commands with a code
        return int(exc.code or 0)
    return rc if isinstance(rc, int) else 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))
