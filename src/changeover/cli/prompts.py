"""CLI commands for the prompts feature: ``changeover prompts audit`` (registered by `changeover.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from changeover.cli.common import DB_OPTION, console, write_json

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


@prompts_app.command("adapt")
def adapt_cmd(
    spec: Path = typer.Option(..., "--spec", "-s", help="Migration spec with models:, judges: and prompts:."),
    candidate: str = typer.Option(..., "--candidate", "-c", help="The candidate whose prompt to adapt."),
    prompts: Path = typer.Option(..., "--prompts", "-p", help="Logged production interactions (with prompt_id)."),
    proposer: str | None = typer.Option(
        None, "--proposer", help="Model (of models:) that writes the variants, or 'rules': fixed rewrites, no calls."
    ),
    budget_calls: int | None = typer.Option(None, "--budget-calls", min=0, help="At most this many model calls."),
    budget_usd: float | None = typer.Option(None, "--budget-usd", min=0.0, help="At most this much USD."),
    sample: int | None = typer.Option(None, "--sample", min=1, help="Interactions to sample (stratified)."),
    prompt_id: str | None = typer.Option(None, "--prompt-id", help="The registry prompt to adapt."),
    pattern: list[str] | None = typer.Option(None, "--pattern", help="Patterns to try, in order (repeatable)."),
    max_variants: int | None = typer.Option(None, "--max-variants", min=1, help="Proposals to try at most."),
    db: str | None = DB_OPTION,
    json_out: Path | None = typer.Option(None, "--json", help="Write the search as JSON here."),
    draws: int = typer.Option(250, min=50, help="Posterior draws (and warmup) per chain of each assessment."),
    chains: int = typer.Option(4, min=2, max=16, help="Independent chains of each assessment (for R-hat)."),
) -> None:
    """Search for a prompt variant that makes a candidate non-inferior, within a budget.

    From the candidate's failures on a stratified sample, the proposer writes
    variants along the adaptation patterns (output format, instruction
    specificity, few-shot examples, instruction order), one pattern each; every
    variant is run and judged on the same sample (cached: nothing is called
    twice) and assessed against the incumbent. Stops at the first variant
    non-inferior on every required dimension, or when the budget is spent;
    registers the winner (or the best so far) with its lineage and prints the
    2x2 prompt A/B. Human labels come from the store (`changeover label serve`
    serves the variants' responses); rerun after labelling, it costs no calls.
    Exit 0 with a winner, 1 without.

    Example: changeover prompts adapt --spec migration.yaml --candidate new-model
    --prompts traffic.jsonl --proposer judge-model --budget-calls 500 --budget-usd 2
    """
    from changeover.config import load_spec
    from changeover.evaluate.adapt import adapt
    from changeover.prompts import read_interactions
    from changeover.store import open_store

    migration = load_spec(spec)
    interactions = read_interactions(prompts)
    with open_store(db) as store:
        result = adapt(
            migration,
            interactions,
            candidate,
            store=store,
            proposer=proposer,
            prompt_id=prompt_id,
            sample=sample,
            budget_calls=budget_calls,
            budget_usd=budget_usd,
            patterns=pattern or None,
            max_variants=max_variants,
            fit={"draws": draws, "warmup": draws, "chains": chains},
        )
    data = result.to_json()
    if json_out is not None:
        write_json(data, json_out)
    print_adapt(data)
    raise typer.Exit(0 if result.winner is not None else 1)


def print_adapt(data: dict[str, Any]) -> None:
    """The tried variants, what was called, what was registered, and the A/B."""
    from rich.markup import escape

    dims = sorted({d for row in data["tried"] for d in row["calls"]})
    table = Table(
        title=f"adapting {data['prompt']} for {data['candidate']} (proposer {data['proposer']}, "
        f"sample {data['sample']})",
        title_justify="left",
    )
    for col in ("#", "variant", "parent", "pattern", "status", "verdict", *dims, "calls"):
        table.add_column(col, no_wrap=True)
    for row in data["tried"]:
        cells = [
            escape(f"{row['calls'][d]} ({row['deltas'][d]['mean']:+.2f})") if d in row["calls"] else "-" for d in dims
        ]
        table.add_row(
            str(row["n"]),
            escape(row["arm"]),
            escape(row["parent"]),
            row["pattern"],
            row["status"],
            row["verdict"] or "-",
            *cells,
            str(row["calls_made"]) if row["n"] else "-",
        )
    console.print(table)
    for row in data["tried"]:
        if row["note"]:
            note = " ".join(row["note"].split())
            console.print(f"#{row['n']} {row['status']}: {escape(note[:200])}", highlight=False, soft_wrap=True)
    console.print(f"stop: {escape(data['stop'])}", highlight=False)
    budget = data["budget"]
    limits = ", ".join(f"{k} {budget[k]}" for k in ("calls", "usd") if budget[k] is not None) or "no limit"
    console.print(
        f"budget ({limits}): {budget['calls_made']:,} calls made, ${budget['usd_spent']:.4f} spent, "
        f"{budget['calls_refused']:,} refused",
        highlight=False,
    )
    for model, c in data["calls"].items():
        console.print(f"calls {escape(model)}: {c['made']:,} made, {c['cached']:,} cached, ${c['cost_usd']:.4f}")
    p = data["proposals"]
    console.print(
        f"proposals: {p.get('asked', 0)} asked, {p.get('parsed', 0)} parsed, {p.get('unparsed', 0)} unparsed, "
        f"{p.get('invalid', 0)} invalid, {p.get('failed', 0)} failed",
        highlight=False,
    )
    console.print(f"store: {data['stored_records']:,} new records (label them with `changeover label serve`)")
    reg = data["registered"]
    if reg:
        console.print(
            escape(
                f"registered {reg['prompt']}@{reg['variant']}:v{reg['version']} in {reg['file']} "
                f"(lineage: {reg['lineage']})"
            ),
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print("registered: nothing")
    if data["ab"]:
        ab = Table(title="prompt A/B of " + escape(data["winner"] or data["best"]), title_justify="left")
        ab.add_column("arm (against the incumbent)", no_wrap=True)
        adims = sorted({d for arm in data["ab"]["arms"].values() for d in arm})
        for d in adims:
            ab.add_column(d, no_wrap=True)
        for arm, cells in data["ab"]["arms"].items():
            ab.add_row(
                escape(arm),
                *(
                    escape(f"{cells[d]['call']} {cells[d]['mean']:+.2f} [{cells[d]['lower']:+.2f}, ")
                    + escape(f"{cells[d]['upper']:+.2f}]")
                    for d in adims
                ),
            )
        console.print(ab)
        for d, e in data["ab"]["effects"].items():
            console.print(
                f"{d}: prompt effect on the new model {e['prompt_on_new_model']:+.2f}, on the old model "
                f"{e['prompt_on_old_model']:+.2f}; model effect {e['model']:+.2f}; both {e['both']:+.2f}",
                highlight=False,
            )
    elif data["ab_note"]:
        console.print(data["ab_note"])


def register(app: typer.Typer) -> None:
    """Add `changeover prompts ...` to the main app."""
    app.add_typer(prompts_app, name="prompts")
