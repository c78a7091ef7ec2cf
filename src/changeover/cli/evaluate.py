"""CLI commands for the evaluate feature: ``changeover evaluate`` and ``changeover doctor``.

Parse, call ``changeover.evaluate``, print. Registered by ``changeover.cli``.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from changeover.cli.common import DB_OPTION, console, write_json
from changeover.cli.engine_options import ENGINE_OPTION, RAY_ADDRESS_OPTION

EVALUATE_HELP = (
    "Run the incumbent and every candidate on sampled production traffic, judge each response, and "
    "write the records that `changeover assess` decides on.\n\n"
    "Samples the logged interactions stratified by segment (each row keeps its sampling weight), calls "
    "every model with its own prompt variant (concurrency, rate limits, retries, timeouts from the "
    "spec's models: section), replays multi-turn conversations and answers an agent's tool calls from "
    "the recorded tool results, judges every response on each signal of the judges: section, and picks "
    "the items to send to humans. Every call is cached in the store: a rerun, or a resumed run after a "
    "crash, calls nothing twice. API keys come only from the environment (api_key_env).\n\n"
    "Example: changeover evaluate --spec migration.yaml --prompts logged_traffic.jsonl --sample 2000 "
    "--labels-budget 300\n\n"
    "then: changeover assess --spec migration.yaml --records .changeover/evaluate/records.jsonl\n\n"
    "With --check: only send one request per distinct parameter set to each model and report what it "
    "refuses (exit 1 if anything is refused or fails), like `changeover doctor`.\n\n"
    "Writes OUT/records.jsonl, OUT/to_label.jsonl, OUT/summary.json (and OUT/assess-spec.yaml with "
    "--prompt-ab). See docs/evaluate.md for the spec sections."
)
DOCTOR_HELP = (
    "Check that every model accepts the requests a run would send, before spending on the run.\n\n"
    "Sends one request per distinct parameter set (parameters and tool definitions) of the sampled "
    "traffic to the incumbent and each candidate, and one per LLM judge, and reports what each refuses "
    "(e.g. max_tokens where "
    "max_completion_tokens is wanted, an unsupported temperature, tools, response_format) with the "
    "models.<name>.param_map entry that fixes it. Accepted calls are cached: the run reuses them. "
    "Exit 0 when everything is accepted, 1 otherwise.\n\n"
    "Example: changeover doctor --spec migration.yaml --prompts logged_traffic.jsonl"
)


def print_summary(summary: dict[str, Any], paths: dict[str, Path], spec: Path) -> None:
    table = Table(title=f"evaluated {summary['items']:,} interactions", title_justify="left")
    for col in ("arm", "calls", "cached", "errors", "rejected", "latency ms", "tokens out", "cost $"):
        table.add_column(col, justify="left" if col == "arm" else "right", no_wrap=True)
    for arm in summary["arms"]:
        n = max(1, arm["calls"] + arm["cached"])
        table.add_row(
            arm["name"],
            f"{arm['calls']:,}",
            f"{arm['cached']:,}",
            f"[red]{arm['errors']:,}[/]" if arm["errors"] else "0",
            f"[yellow]{arm['rejected']:,}[/]" if arm["rejected"] else "0",
            f"{arm['latency_ms'] / n:,.0f}",
            f"{arm['tokens_out'] / n:,.1f}",
            f"{arm['cost_usd']:.4f}",
        )
    console.print(table)
    signals = sorted({s for arm in summary["arms"] for s in arm["signal_means"]})
    if signals:
        means = Table(title="mean signal per arm", title_justify="left")
        means.add_column("signal", no_wrap=True)
        for arm in summary["arms"]:
            means.add_column(arm["name"], justify="right", no_wrap=True)
        for s in signals:
            values = [arm["signal_means"].get(s) for arm in summary["arms"]]
            means.add_row(s, *("-" if v is None else f"{v:.3f}" for v in values))
        console.print(means)
    for arm in summary["arms"]:
        if arm.get("tool_status"):
            statuses = ", ".join(f"{k} {v}" for k, v in sorted(arm["tool_status"].items()))
            console.print(f"tool replay {arm['name']}: {statuses}")
        if arm.get("empty_answers"):
            reasons = ", ".join(f"{n:,} {why}" for why, n in sorted(arm["empty_answers"].items()))
            console.print(
                f"[yellow]{arm['name']}[/]: empty answers ({escape(reasons)}), counted as failures by assess; "
                "finish_reason length: raise max_tokens (a reasoning model spends them thinking)",
                highlight=False,
            )
        for rej in arm.get("rejections", []):
            fix = f"{{{rej['param']}: {rej['suggest'] or 'null'}}}"
            console.print(
                f"[yellow]{arm['name']}[/]: {rej['records']:,} requests refused {rej['param']!r} "
                f"({rej['reason']}); not counted as failures. Fix: models.{arm['model']}.param_map: "
                f"{escape(fix)} (check first with `changeover doctor`)",
                highlight=False,
            )
    for signal, counts in summary["judges"].items():
        calls = counts.get("calls")
        if calls:
            console.print(
                f"judge {signal}: {calls['calls']:,} calls, {calls['cached']:,} cached, "
                f"{calls['errors']:,} errors, ${calls['cost_usd']:.4f}"
            )
        if counts.get("unscorable"):
            console.print(
                f"[yellow]{signal}[/]: {counts['unscorable']:,} responses unscorable "
                "(see extra.unscorable in the records)"
            )
    for name, path in paths.items():
        console.print(f"{name}: {path}")
    console.print(f"next: changeover assess --spec {paths.get('assess_spec', spec)} --records {paths['records']}")


def print_compat(report: dict[str, Any]) -> None:
    table = Table(title="request compatibility", title_justify="left")
    for col in ("arm", "parameters", "tools", "requests", "status", "refused"):
        table.add_column(col, no_wrap=col != "parameters")
    for check in report["checks"]:
        status = check["status"]
        colour = {"accepted": "green", "rejected": "yellow"}.get(status, "red")
        rejection = check.get("rejection") or {}
        table.add_row(
            check["arm"],
            escape(", ".join(f"{k}={v}" for k, v in sorted(check["params"].items())) or "-"),
            ", ".join(check["tools"]) or "-",
            f"{check['items']:,}",
            f"[{colour}]{status}[/]",
            f"{rejection['param']} ({rejection['reason']})" if rejection else "",
        )
    console.print(table)
    for check in report["checks"]:
        if check["status"] == "rejected":
            console.print(check["rejection"]["message"], highlight=False, soft_wrap=True, markup=False)
            console.print(f"  fix: {escape(check['fix'])}", highlight=False, soft_wrap=True)
        elif check["status"] == "failed":
            console.print(f"{check['arm']}: [red]failed[/] {escape(check.get('error') or '')}", soft_wrap=True)
    for arm, n in report["not_checked"].items():
        console.print(f"{arm}: {n:,} more parameter sets not checked (over the limit)")
    console.print("all requests accepted" if report["ok"] else "[bold]some requests are refused or fail[/]")


def _check(
    spec: Path,
    prompts: Path,
    db: str | None,
    sample: int | None,
    json_out: Path | None,
    prompt_ab: bool | None = None,
    seed: int | None = None,
) -> int:
    from changeover.config import load_spec
    from changeover.evaluate import check_requests
    from changeover.prompts import read_interactions
    from changeover.store import open_store

    migration = load_spec(spec)
    interactions = read_interactions(prompts)
    with open_store(db) as store:
        report = check_requests(
            migration, interactions, store=store, sample=sample, prompt_ab=prompt_ab, seed=seed
        ).to_json()
    if json_out is not None:
        write_json(report, json_out)
    print_compat(report)
    return 0 if report["ok"] else 1


def register(app: typer.Typer) -> None:
    """Add `changeover evaluate` and `changeover doctor` to the main app."""

    @app.command("evaluate", help=EVALUATE_HELP)
    def evaluate_cmd(
        spec: Path = typer.Option(..., "--spec", "-s", help="Migration spec (YAML) with models:, judges:."),
        prompts: Path = typer.Option(
            ..., "--prompts", "-p", help="Logged production interactions (.jsonl, .csv or .parquet)."
        ),
        sample: int | None = typer.Option(
            None, min=1, help="Interactions to sample (default: evaluate.sample or all)."
        ),
        labels_budget: int | None = typer.Option(
            None, "--labels-budget", min=0, help="Items to export for human labelling."
        ),
        prompt_ab: bool | None = typer.Option(
            None, "--prompt-ab/--no-prompt-ab", help="Run {old, adapted prompt} x {old, new model}."
        ),
        out: Path = typer.Option(Path(".changeover/evaluate"), "--out", "-o", help="Output folder."),
        db: str | None = DB_OPTION,
        json_out: Path | None = typer.Option(None, "--json", help="Write the run summary as JSON here."),
        seed: int | None = typer.Option(None, help="Sampling seed (default: the spec's seed)."),
        samples: int | None = typer.Option(
            None, "--samples", min=1, max=100, help="Answers drawn per (item, model) (default: evaluate.samples or 1)."
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
        check: bool = typer.Option(
            False, "--check", help="Only check that every model accepts the requests' parameters (no run)."
        ),
        import_records: bool = typer.Option(
            False,
            "--import",
            help="Also add the records to the store, so `changeover assess` without --records reads them.",
        ),
        engine: str = ENGINE_OPTION,
        ray_address: str | None = RAY_ADDRESS_OPTION,
    ) -> None:
        from changeover.engines import choose_engine

        chosen = choose_engine(engine, ray_address)  # Ray missing: exit 2 before anything runs
        if check:
            raise typer.Exit(_check(spec, prompts, db, sample, json_out, prompt_ab, seed))
        from changeover.config import load_spec
        from changeover.evaluate import RichProgress, check_out_folder, evaluate, write_outputs
        from changeover.prompts import read_interactions
        from changeover.store import open_store

        migration = load_spec(spec)
        interactions = read_interactions(prompts)
        check_out_folder(out)  # before the calls, not after them
        bars = RichProgress(console) if progress else nullcontext(None)
        with open_store(db) as store, bars as reporter:
            result = evaluate(
                migration,
                interactions,
                store=store,
                sample=sample,
                labels_budget=labels_budget,
                prompt_ab=prompt_ab,
                seed=seed,
                progress=reporter,
                samples=samples,
                engine=chosen,
            )
        if import_records:
            from changeover.store.responses import add_records

            with open_store(db) as store:
                rows, added = add_records(store, result.records, source=f"evaluate:{prompts}")
            console.print(f"store: {rows:,} records, {added:,} added ({rows - added:,} already stored)")
        paths = write_outputs(result, out)
        summary = result.summary()
        if json_out is not None:
            write_json(summary, json_out)
        print_summary(summary, paths, spec)

    @app.command("doctor", help=DOCTOR_HELP)
    def doctor_cmd(
        spec: Path = typer.Option(..., "--spec", "-s", help="Migration spec (YAML) with models:."),
        prompts: Path = typer.Option(..., "--prompts", "-p", help="Logged production interactions."),
        sample: int | None = typer.Option(None, min=1, help="Interactions to sample (default: as evaluate does)."),
        db: str | None = DB_OPTION,
        json_out: Path | None = typer.Option(None, "--json", help="Write the check as JSON here."),
    ) -> None:
        raise typer.Exit(_check(spec, prompts, db, sample, json_out))
