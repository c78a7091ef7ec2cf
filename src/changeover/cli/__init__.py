"""The command line: parse, call a feature, print. No logic of its own.

Each feature registers its commands from its own module here (``assess``,
``evaluate``, ``gateway``, ``embeddings``, ``report``, ``label``, ``prompts``),
so the main app stays a table of contents.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.markup import escape

from changeover import __version__
from changeover.cli import assess, embeddings, evaluate, gateway, label, pick, prompts, report, scan, traffic
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


for module in (assess, pick, evaluate, prompts, gateway, embeddings, label, report, scan, traffic):
    module.register(app)


# The click that typer runs on: typer >= 0.2x vendors its own copy (typer._click), older releases use the
# click package. Catching the package's classes let every usage error escape as a traceback (exit 1).
_click_errors = importlib.import_module(typer.BadParameter.__module__)
ClickException = _click_errors.ClickException
NoArgsIsHelp = getattr(_click_errors, "NoArgsIsHelpError", None)


def _usage_error(exc: Exception) -> int:
    """One line naming what was wrong and where to look; exit 2 (a mistyped option is bad input)."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None and getattr(ctx, "command_path", None) else "changeover"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(message.split()).rstrip(".")
    err_console.print(f"error: {message}; see `{command} --help`", markup=False, highlight=False, soft_wrap=True)
    return 2


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; user errors print without a traceback, exit 2."""
    try:
        rc = app(args=argv, prog_name="changeover", standalone_mode=False)
    except ChangeoverError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)  # [ray] stays
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except ClickException as exc:
        if NoArgsIsHelp is not None and isinstance(exc, NoArgsIsHelp):
            exc.show()  # `changeover rollout` alone: the group's help
            return 2
        return _usage_error(exc)
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except SystemExit as exc:  # typer.Exit inside commands with a code
        return int(exc.code or 0)
    return rc if isinstance(rc, int) else 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))
