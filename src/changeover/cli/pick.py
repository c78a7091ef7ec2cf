"""CLI for choosing a candidate: ``changeover pick`` (registered by `changeover.cli`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from changeover.assessment.objectstore import records_path
from changeover.cli.common import DB_OPTION, console, write_json


def register(app: typer.Typer) -> None:
    @app.command("pick")
    def pick_cmd(
        spec: Path = typer.Option(..., "--spec", "-s", help="Migration spec (YAML)."),
        records: Path | None = typer.Option(
            None, "--records", "-r", parser=records_path, help="Records file; default: the records in the store."
        ),
        db: str | None = DB_OPTION,
        json_path: Path | None = typer.Option(None, "--json", help="Write the ranking as JSON here."),
        seed: int | None = typer.Option(None, "--seed", help="Random seed (default: the spec's seed)."),
        no_store_labels: bool = typer.Option(
            False, "--no-store-labels", help="With --records: do not merge the human labels held in the store."
        ),
    ) -> None:
        """Pick the cheapest candidate that is safe: GO on every required dimension, then cost, then p95 latency.

        Runs the assessment, then ranks the candidates (models, or models with a
        prompt variant) at the spec's traffic: cost per month from the measured
        cost of each response (its cost_usd, or its tokens priced by the spec's
        pricing: table), the monthly saving against the incumbent with its 95%
        interval, and p95 latency. A cheaper candidate that still needs labels is
        named with the labels that would settle it. The front column marks the
        Pareto front of cost and quality: no other option (the incumbent too)
        is cheaper and at least as good on every required dimension. Exit code:
        0 a GO candidate exists, 3 none yet but some need labels, 1 every
        candidate is NO-GO, 2 bad input.

        Example: changeover pick --spec migration.yaml --records records.jsonl --json pick.json
        """
        from changeover.assess import assess
        from changeover.cli.common import load_assessment_records, print_merged
        from changeover.config import load_spec
        from changeover.pick import pick
        from changeover.pick.report import cost_text, latency_text, pick_json

        migration = load_spec(spec)
        recs, merged, store_url = load_assessment_records(migration, records, db, store_labels=not no_store_labels)
        print_merged(merged, store_url, records)
        result = pick(assess(migration, recs, seed=seed), recs)
        unit = "per month" if result.per_month else "per 1,000 responses"
        table = Table(title=f"candidates for replacing {migration.incumbent}, cost {unit}", title_justify="left")
        columns = (
            "rank",
            "candidate",
            "verdict",
            "cost",
            "saving vs incumbent",
            "p95 latency",
            "labels needed",
            "front",
        )
        for col in columns:
            table.add_column(col, justify="right" if col in ("rank", "p95 latency", "labels needed") else "left")
        for i, c in enumerate(result.ranked, 1):
            table.add_row(
                str(i),
                c.candidate,
                c.verdict.value,
                cost_text(c.costs.cost),
                cost_text(c.saving),
                latency_text(c.costs.p95_latency_ms),
                f"{c.labels_needed:,}",
                "yes" if c.on_front else "",
            )
        console.print(table)
        front = ", on the Pareto front" if result.incumbent_on_front else ""
        console.print(f"incumbent {migration.incumbent}: {cost_text(result.incumbent.cost)} {unit}{front}")
        if result.recommended is not None:
            r = result.recommended
            saving = f", saving {cost_text(r.saving)} {unit}" if r.saving is not None else ""
            console.print(f"[bold green]pick: {r.candidate}[/] (GO{saving})")
        else:
            console.print("[bold]no candidate is GO yet[/]")
        for c in result.cheaper_undecided:
            top = ", ".join(f"{n.item}@{n.model}" for n in c.next_labels[:5])
            console.print(
                f"cheaper but undecided: {c.candidate} (~{c.labels_needed:,} labels needed; label next: {top})"
            )
        if json_path is not None:
            write_json(pick_json(result), json_path)
        raise typer.Exit(result.exit_code)
