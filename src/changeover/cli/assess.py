"""CLI commands for the assessment core: import, assess, demo."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from changeover.cli.common import DB_OPTION, console, err_console, write_json
from changeover.errors import DataError

SPEC_EXAMPLE = """\
incumbent: legacy-model
candidates: [cand-a, cand-b]
segment_by: [region]
traffic: {monthly_interactions: 5300000, shares: {emea: 0.3, na: 0.5, apac: 0.2}}
confidence: 0.95
dimensions:
  correctness: {signal: correctness, margin: 0.02}
  refusal:     {signal: refusal, margin: 0.005}
  style:       {signal: style, margin: 0.03, levels: 5}
required_segments: all"""

ASSESS_HELP = (
    "Decide GO / NO-GO / NEED-LABELS for each candidate against the incumbent.\n\n"
    "Calibrates the automated signals against the human labels per model and per segment, and reports "
    "the posterior of each pass rate and of the difference, a verdict at the spec's confidence, and "
    "which items humans should label next. Exit code: 0 GO, 1 NO-GO, 3 NEED-LABELS, 2 invalid input.\n\n"
    "Example: changeover assess --spec migration.yaml --records records.jsonl --json decision.json\n\n"
    "A minimal spec:\n\n\b\n" + escape(SPEC_EXAMPLE)  # rich markup would eat "[cand-a, cand-b]"
)

VERDICT_STYLE = {
    "GO": "bold green",
    "NO-GO": "bold red",
    "NEED-LABELS": "bold yellow",
    "superior": "green",
    "non-inferior": "green",
    "inconclusive": "yellow",
    "regression": "red",
}


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}" if x is not None else "-"


def _rate(x: dict[str, float]) -> str:
    return f"{x['mean'] * 100:.1f}%"


def print_assessment(result: dict[str, Any]) -> None:
    """The verdict table per candidate, one line per candidate in plain words, what to label next."""
    conf = result["confidence"]
    for cand, c in result["candidates"].items():
        table = Table(
            title=f"{cand} vs {result['incumbent']}: [{VERDICT_STYLE[c['verdict']]}]{c['verdict']}[/]",
            title_justify="left",
            caption=f"pass rates and delta in points, {conf:.0%} credible interval",
            caption_justify="left",
        )
        for col in ("dimension", "segment", "incumbent", "candidate", "delta [interval]", "P(non-inf)", "verdict"):
            table.add_column(
                col, justify="left" if col in ("dimension", "segment", "verdict") else "right", no_wrap=True
            )
        for dim, d in c["dimensions"].items():
            rows = [("overall", d["overall"])]
            if len(d["segments"]) > 1:
                rows += list(d["segments"].items())
            for i, (seg, s) in enumerate(rows):
                dl = s["delta"]
                table.add_row(
                    dim if i == 0 else "",
                    seg,
                    _rate(s["incumbent"]),
                    _rate(s["candidate"]),
                    f"{_pct(dl['mean'])} [{_pct(dl['lower'])}, {_pct(dl['upper'])}]",
                    f"{s['p_noninferior']:.3f}",
                    f"[{VERDICT_STYLE.get(s['verdict'], '')}]{s['verdict']}[/]",
                )
        console.print(table)
    for c in result["candidates"].values():
        console.print(f"[{VERDICT_STYLE[c['verdict']]}]{c['verdict']:>11}[/]  {c['summary']}", highlight=False)
    needed = {f"{c}/{d}": n for c, dims in result["labels_needed"].items() for d, n in dims.items() if n}
    if needed:
        console.print("labels still needed (rough): " + ", ".join(f"{k} ~{v:,}" for k, v in needed.items()))
    if result["next_labels"]:
        top = ", ".join(f"{x['item']}@{x['model']}" for x in result["next_labels"][:5])
        console.print(f"label next ({len(result['next_labels'])} ranked in the JSON): {top} ...")
    for w in result["diagnostics"].get("warnings", []):
        err_console.print(f"[yellow]warning:[/] {w}")
    diag = result["diagnostics"]
    console.print(
        f"[bold]verdict: [{VERDICT_STYLE[result['verdict']]}]{result['verdict']}[/][/] "
        f"(R-hat max {diag['rhat_max']:.3f}, ESS min {diag['ess_min']:.0f})"
    )


def register(app: typer.Typer) -> None:
    """Add import, assess and demo to the main app."""

    @app.command("import")
    def import_cmd(
        files: list[Path] = typer.Argument(..., help="Records files (.jsonl, .jsonl.gz, .csv, .parquet)."),
        db: str | None = DB_OPTION,
    ) -> None:
        """Load records into the store; re-importing the same rows adds nothing.

        Each file is validated completely first and stored in one transaction:
        a bad row is reported as file:line and field, and nothing from that
        file is stored.

        Example: changeover import logged.jsonl labels.csv --db postgresql+psycopg://me@localhost/changeover
        """
        from changeover.store import open_store
        from changeover.store.responses import import_file

        with open_store(db) as store:
            for path in files:
                res = import_file(store, path)
                console.print(f"{path}: {res.rows:,} rows, {res.added:,} added, {res.duplicates:,} already stored")

    @app.command("assess", help=ASSESS_HELP)
    def assess_cmd(
        spec: Path = typer.Option(..., "--spec", "-s", help="Migration spec (YAML)."),
        records: Path | None = typer.Option(
            None, "--records", "-r", help="Records file; default: the records in the store."
        ),
        db: str | None = DB_OPTION,
        json_out: Path | None = typer.Option(None, "--json", help="Write the decision as JSON here."),
        draws: int = typer.Option(250, min=50, help="Posterior draws per chain."),
        warmup: int = typer.Option(300, min=50, help="Warm-up iterations per chain."),
        chains: int = typer.Option(4, min=2, max=16, help="Independent chains (for R-hat)."),
        seed: int | None = typer.Option(None, help="Random seed (default: the spec's seed)."),
        next_labels: int = typer.Option(50, "--next", min=0, help="How many items to rank for labelling."),
    ) -> None:
        from changeover.assess import assess
        from changeover.config import load_spec
        from changeover.records import read_records

        migration = load_spec(spec)
        if records is not None:
            recs = read_records(records)
        else:
            from changeover.store import open_store
            from changeover.store.responses import load_records

            with open_store(db) as store:
                recs = load_records(store, migration.models)
            if not recs:
                raise DataError(
                    f"the store ({store.display_url}) holds no records for {migration.models}; "
                    "run `changeover import FILE` first or pass --records FILE"
                )
        with console.status(
            f"fitting {len(migration.candidates)} candidate(s) x "
            f"{len(migration.dimensions)} dimension(s) on {len(recs):,} records..."
        ):
            started = time.perf_counter()
            result = assess(
                migration, recs, seed=seed, draws=draws, warmup=warmup, chains=chains, next_count=next_labels
            )
            elapsed = time.perf_counter() - started
        print_assessment(result.to_json())
        console.print(f"[dim]fitted in {elapsed:.1f} s[/]")
        if json_out:
            write_json(result.to_json(), json_out)
            console.print(f"decision written to {json_out}")
        raise typer.Exit(result.exit_code)

    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(
            Path("changeover-demo"), "--out", help="Folder for the spec, records, store, decision and report."
        ),
        labels: int = typer.Option(120, min=10, max=450, help="Prompts whose human labels are kept."),
        seed: int = typer.Option(7, help="Which prompts keep their labels."),
        live: bool = typer.Option(
            False,
            "--live",
            help="Also run real local LLMs end to end (needs the local-model extras; see docs/evaluate.md).",
        ),
    ) -> None:
        """A full migration assessment on bundled real data (XSTest), SQLite, no network.

        The incumbent Llama-2-70b-chat is being retired; candidates GPT-4 and
        Mistral-7B-Instruct with a guardrail prompt. Their refusal behaviour was
        judged by a GPT-4 refusal classifier on all 450 prompts; human labels
        are kept on a random minority (--labels). Prints the verdict table, the
        judge's per-model calibration, and what all 450 human labels say.

        Example: changeover demo --labels 120 --out changeover-demo
        """
        from changeover import demo
        from changeover.assess import assess
        from changeover.report import write_report
        from changeover.store import open_store
        from changeover.store.responses import import_file, load_records

        if live:
            from changeover.evaluate import live_demo

            live_demo(out / "live", console=console)
            return
        data = demo.prepare(labels=labels, seed=seed)
        spec_path, records_path = demo.write_inputs(data, out)
        db_url = f"sqlite:///{(out / 'changeover.db').resolve()}"
        with open_store(db_url) as store:
            res = import_file(store, records_path)
            recs = load_records(store, data.spec.models)
            console.print(
                f"[bold]changeover demo[/]: {data.spec.incumbent} -> {', '.join(data.spec.candidates)} "
                f"on XSTest (450 prompts); human labels kept on {len(data.labelled_items)} prompts, "
                f"the GPT-4 judge's verdict on all."
            )
            console.print(f"[dim]spec {spec_path}, records {records_path} ({res.rows:,} rows), store {db_url}[/]")
            started = time.perf_counter()
            with console.status("fitting the measurement model..."):
                result = assess(data.spec, recs)
            print_assessment(result.to_json())
            console.print(f"[dim]fitted in {time.perf_counter() - started:.1f} s[/]")
            _print_judge_story(data, result)
            write_json(result.to_json(), out / "decision.json")
            console.print(f"decision: {out / 'decision.json'}")
            path = write_report(
                result, data.spec, out / "report.html", markdown=out / "summary.md", store=store, records=recs
            )
            console.print(f"report: {path}")
        raise typer.Exit(result.exit_code)


def _print_judge_story(data: Any, result: Any) -> None:
    """What the judge alone says, what the calibrated model says, what all human labels say."""
    from changeover import demo

    table = Table(
        title="the judge is not equally kind to every model (refusal, traffic-weighted delta, pts)",
        title_justify="left",
    )
    for col in (
        "candidate",
        "judge alone",
        "calibrated (95% CI)",
        "all 450 human labels",
        "judge sens/spec on candidate",
    ):
        table.add_column(col, justify="right" if col != "candidate" else "left")
    judge = result.to_json()["diagnostics"]["judge"][demo.DIMENSION]
    for cand in data.spec.candidates:
        o = result.to_json()["candidates"][cand]["dimensions"][demo.DIMENSION]["overall"]["delta"]
        j = judge[cand]
        table.add_row(
            cand,
            _pct(demo.naive_delta(data.truth, data.spec, cand, "judge")),
            f"{_pct(o['mean'])} [{_pct(o['lower'])}, {_pct(o['upper'])}]",
            _pct(demo.naive_delta(data.truth, data.spec, cand, "human")),
            f"{j['sensitivity']:.2f} / {j['specificity']:.2f}",
        )
    inc = judge[data.spec.incumbent]
    console.print(table)
    console.print(
        f"[dim]judge sens/spec on the incumbent {data.spec.incumbent}: "
        f"{inc['sensitivity']:.2f} / {inc['specificity']:.2f}[/]"
    )
