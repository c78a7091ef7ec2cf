"""CLI commands ``changeover traffic ...``: bring logged traffic from where it lives into the traffic format."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from changeover.cli.common import console, write_json

traffic_app = typer.Typer(
    help="Logged traffic from where it lives (provider logs, traces, eval files) into changeover's traffic JSONL.\n\n"
    "Example: changeover traffic import spans.otlp.json --out traffic.jsonl --spec migration.yaml",
    no_args_is_help=True,
)

IMPORT_HELP = """Convert a log, trace or eval file into the traffic JSONL that `changeover evaluate --prompts` reads.

Formats (--format, default auto = judged from the content): openai-chat (chat-completions
request logs, with or without responses), openai-batch (Batch API input; --responses for the
output file), anthropic (Messages request logs, Message Batches), otel (OpenTelemetry GenAI
spans, OTLP JSON), langfuse (observation or trace exports), langsmith (run exports),
openai-evals (Evals JSONL samples), promptfoo (config or tests YAML).

Every row keeps the full request context (system prompt, history, tool definitions, recorded
tool calls and tool results as messages). Segments: request_type and source_model by default,
plus --segment NAME=PATH (a dotted path into the source record) and the spec's
`traffic_import.segments`. The spec's `redaction:` rules (and `shadow.redact`) are applied before
anything is written. Nothing is written when a record is bad.

Example: changeover traffic import langfuse-export.json --out traffic.jsonl --segment region=metadata.region
"""


def _segments(pairs: list[str]) -> dict[str, str]:
    from changeover.traffic import TrafficError

    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise TrafficError(f"--segment: expected NAME=PATH (e.g. region=metadata.region), got {pair!r}")
        out[name.strip()] = path.strip()
    return out


@traffic_app.command("import", help=IMPORT_HELP)
def import_cmd(
    source: Path = typer.Argument(..., help="The log, trace or eval file to import."),
    out: Path = typer.Option(..., "--out", "-o", help="Traffic JSONL to write (replaced atomically)."),
    fmt: str = typer.Option("auto", "--format", "-f", help="Source format, or auto."),
    spec: Path | None = typer.Option(
        None, "--spec", "-s", help="Migration spec: traffic_import.segments and redaction rules."
    ),
    segment: list[str] = typer.Option([], "--segment", help="NAME=PATH: a segment read from the source record."),
    responses: Path | None = typer.Option(None, "--responses", help="openai-batch: the Batch output file to join."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the import summary as JSON here."),
) -> None:
    from changeover.config import load_spec
    from changeover.prompts.traffic import read_interactions
    from changeover.redaction import Redactor
    from changeover.traffic import import_traffic
    from changeover.traffic.config import redaction_rules, traffic_config

    loaded = load_spec(spec, core=False) if spec is not None else None
    given = _segments(segment)
    segments = {**traffic_config(loaded).segments, **given}
    rules = redaction_rules(loaded)
    options = {"responses": responses} if responses is not None else {}
    result = import_traffic(
        source,
        out,
        fmt,
        segments=segments,
        redactor=Redactor(rules) if rules else None,
        check=read_interactions,  # what evaluate will read must read
        required=list(given),  # a path typed on the command line must find something
        **options,
    )
    console.print(
        f"{result.rows} interactions from {source} ({result.format}) -> {out}: {result.with_tools} with tools, "
        f"{result.with_recorded} with a recorded answer, {result.turns} messages"
        + (f"; {len(rules)} redaction rule(s) applied" if rules else ""),
        highlight=False,
        markup=False,
    )
    table = Table(title="segments", title_justify="left")
    for col in ("segment", "values (count)"):
        table.add_column(col)
    for name, counts in result.segments.items():
        shown = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        more = f" ... {len(shown) - 8} more" if len(shown) > 8 else ""
        table.add_row(escape(name), escape(", ".join(f"{v} ({n})" for v, n in shown[:8])) + more)  # data, not markup
    console.print(table)
    for name in segments:
        if name not in result.resolved:  # a spec's path may be for another source format: said, not fatal
            console.print(
                f"[yellow]segment {escape(name)}[/] ({escape(segments[name])}, from the spec) was found in no record",
                highlight=False,
            )
    console.print(f"next: changeover evaluate --spec migration.yaml --prompts {out}", highlight=False, markup=False)
    if json_out is not None:
        write_json(result.to_dict(), json_out)


def register(app: typer.Typer) -> None:
    """Add `changeover traffic ...` to the main app."""
    app.add_typer(traffic_app, name="traffic")
