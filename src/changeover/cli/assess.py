"""CLI commands for the assessment core: import, assess, demo (parse, call the feature, print)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from changeover.assessment.objectstore import ObjectPath, ObjectStoreError, pushdown_refused, records_path
from changeover.cli.common import (
    DB_OPTION,
    console,
    err_console,
    load_assessment_records,
    print_merged,
    write_ci_outputs,
)

if TYPE_CHECKING:
    from changeover.assessment import Assessment, SegmentResult
    from changeover.demo import DemoRun

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


def _pct(x: float | None) -> str:
    return f"{x * 100:+.1f}" if x is not None else "-"


def _call(s: SegmentResult) -> str:
    word = f"{s.call} (borderline)" if s.borderline and s.call == "inconclusive" else str(s.call)
    return f"[{VERDICT_STYLE.get(str(s.call), '')}]{word}[/]"


def _p(s: SegmentResult) -> str:
    p = s.p_noninferior
    return f"{p.value:.3f}±{p.mcse:.3f}" if p.borderline else f"{p.value:.3f}"


def print_assessment(assessment: Assessment) -> None:
    """The verdict table per candidate, one line per candidate in plain words, what to label next."""
    from changeover.assessment.words import unstable_words

    d = assessment.decision
    errors = {m: e for m, e in d.error_rates.items() if e.errors}
    for cand, c in d.candidates.items():
        caption = f"pass rates and delta in points, {d.confidence:.0%} equal-tailed credible interval"
        failed = [
            f"{m} {errors[m].rate:.1%} ({errors[m].errors:,}/{errors[m].responses:,})"
            for m in (d.incumbent, cand)
            if m in errors
        ]
        if failed:
            caption += "; failed calls (count as unacceptable): " + ", ".join(failed)
        table = Table(
            title=f"{cand} vs {d.incumbent}: [{VERDICT_STYLE[c.verdict]}]{c.verdict}[/]",
            title_justify="left",
            caption=caption,
            caption_justify="left",
        )
        for col in ("dimension", "segment", "incumbent", "candidate", "delta [interval]", "P(non-inf)", "verdict"):
            table.add_column(
                escape(col), justify="left" if col in ("dimension", "segment", "verdict") else "right", no_wrap=True
            )
        for dim, dr in c.dimensions.items():
            rows = [dr.overall] + (list(dr.segments.values()) if len(dr.segments) > 1 else [])
            for i, s in enumerate(rows):
                table.add_row(
                    dim if i == 0 else "",
                    s.name,
                    f"{s.incumbent.mean * 100:.1f}%",
                    f"{s.candidate.mean * 100:.1f}%",
                    f"{_pct(s.delta.mean)} [{_pct(s.delta.lower)}, {_pct(s.delta.upper)}]",
                    _p(s),
                    _call(s),
                )
        console.print(table)
    for c in d.candidates.values():
        console.print(f"[{VERDICT_STYLE[c.verdict]}]{c.verdict:>11}[/]  {c.summary}", highlight=False)
        if (unstable := unstable_words(c, d.incumbent)) is not None:
            console.print(f"{'':>11}  {escape(unstable)}", highlight=False)
    needed = {f"{c}/{dim}": n for c, dims in d.labels_needed.items() for dim, n in dims.items() if n}
    if needed:
        console.print("labels still needed (rough): " + ", ".join(f"{k} ~{v:,}" for k, v in needed.items()))
    if d.next_labels:
        top = ", ".join(f"{x.item}@{x.model}" for x in d.next_labels[:5])
        console.print(f"label next ({len(d.next_labels)} ranked in the JSON): {top} ...")
    diag = d.diagnostics
    for w in diag.warnings:
        err_console.print(f"[yellow]warning:[/] {w}")
    why = f" — {d.reason}" if d.reason else ""
    longer = f", sampled {diag.sampling.draws} draws/chain" if diag.sampling.rounds > 1 else ""
    console.print(
        f"[bold]verdict: [{VERDICT_STYLE[d.verdict]}]{d.verdict}[/][/]{why} "
        f"(R-hat max {diag.rhat_max:.3f}, ESS min {min(diag.ess_bulk_min, diag.ess_tail_min):.0f}{longer})"
    )


@contextmanager
def _status(text: str) -> Iterator[Callable[[str], None]]:
    """A rich status line; the yielded callback replaces its text (the assessment's progress)."""
    with console.status(text) as status:
        yield lambda message: status.update(message)


AUTO_FILE_MB = 64  # --engine auto: a records file this big or bigger is counted in DuckDB
AUTO_STORE_ROWS = 200_000  # ... and a store with this many responses in its own SQL


def _pushed(
    migration: Any, records: Path | None, db: str | None, store_labels: bool, engine: str, next_count: int, ci: Any
) -> Any:
    """The pushdown's tables (``assessment.pushdown.Pushed``), or None for the Python engine (with a one-line
    note when the pushdown was asked for, or chosen, and cannot build them exactly)."""
    from changeover.assessment import pushdown
    from changeover.cli.common import existing_store

    if engine == "python":
        return None
    if ci:
        if engine == "duckdb":
            err_console.print("note: --markdown/--junit read every record; using --engine python")
        return None
    try:
        if records is not None:
            uri = isinstance(records, ObjectPath)  # read by DuckDB only, whatever its size
            if (
                engine == "auto"
                and not uri
                and (not pushdown.available() or records.stat().st_size < AUTO_FILE_MB << 20)
            ):
                return None
            store = existing_store(db, records) if store_labels else None
            verdicts = None
            if store is not None:
                from changeover.labeling.gold import spec_answers
                from changeover.store.responses import current_verdicts

                with store:
                    verdicts = current_verdicts(store, spec_answers(migration))
            try:
                pushed = pushdown.from_file(migration, records, next_count, verdicts)
            except Exception as exc:  # DuckDB's own error mid-read (a cut file, the connection lost)
                if not _is_duckdb_error(exc):
                    raise
                first = " ".join(str(exc).split("\n")[0].split())[:300]
                if uri:
                    raise ObjectStoreError(
                        f"{records}: could not be read ({first}); check the object and the connection and run "
                        "the same command again"
                    ) from None
                raise pushdown.Unsupported(f"DuckDB could not read it ({first})") from None
            if store is not None:
                console.print(
                    f"merged {pushed.merged:,} human label(s) from the store ({store.display_url}) into {records}; "
                    "--no-store-labels leaves them out",
                    highlight=False,
                )
            return pushed
        from changeover.store import open_store
        from changeover.store.responses import count_responses

        with open_store(db) as store:
            if engine == "auto" and count_responses(store) < AUTO_STORE_ROWS:
                return None
            return pushdown.from_store(migration, store, next_count)
    except pushdown.Unsupported as exc:
        if isinstance(records, ObjectPath):
            raise pushdown_refused(records, exc.reason) from None
        err_console.print(f"note: --engine duckdb: {exc.reason}; using --engine python", highlight=False)
        return None


def _is_duckdb_error(exc: BaseException) -> bool:
    """True for DuckDB's own exceptions (without importing DuckDB when the engine did not)."""
    return any(t.__module__.split(".")[0] in ("duckdb", "_duckdb") for t in type(exc).__mro__)


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
            None,
            "--records",
            "-r",
            parser=records_path,
            help="Records file, or its URI in an object store (s3://, gs://, ...: docs/scale.md); "
            "default: the records in the store.",
        ),
        db: str | None = DB_OPTION,
        json_out: Path | None = typer.Option(None, "--json", help="Write the decision as JSON here."),
        draws: int | None = typer.Option(
            None,
            min=50,
            help="Posterior draws per chain (default: 300 for a fit NUTS samples, 500 for one the HMC samples; "
            "more are drawn by itself if the fit needs them).",
        ),
        warmup: int | None = typer.Option(
            None, min=50, help="Warm-up iterations per chain (default: 150 with NUTS, 500 with the HMC)."
        ),
        sampler: str = typer.Option(
            "auto",
            help="'auto' (the default): nutpie's NUTS for every fit (whitened by its Laplace approximation "
            "where that holds), the static HMC (dense metric, 16 leapfrog steps) for a fit that NUTS left "
            "divergent at target acceptance 0.95 too; 'nuts': NUTS only; 'hmc': the static HMC for every fit. "
            "stats/nuts.py says what was measured.",
        ),
        chains: int = typer.Option(4, min=2, max=16, help="Independent chains (for R-hat)."),
        seed: int | None = typer.Option(None, help="Random seed (default: the spec's seed)."),
        next_labels: int = typer.Option(50, "--next", min=0, help="How many items to rank for labelling."),
        store_labels: bool = typer.Option(
            True,
            "--store-labels/--no-store-labels",
            help="With --records: also use the human labels in the store (labelling app, `label import`) "
            "for the same item, model and dimension.",
        ),
        markdown: Path | None = typer.Option(
            None, "--markdown", help="Also write a Markdown summary (a pull-request comment, a CI job summary)."
        ),
        junit: Path | None = typer.Option(
            None, "--junit", help="Also write JUnit XML: one test case per candidate x dimension x segment."
        ),
        looks: int | None = typer.Option(
            None,
            "--looks",
            min=1,
            help="How many times this decision has been read as labels arrived (a loop that re-assesses after "
            "each batch and stops at the first GO): the threshold rises with it so false GO stays at 1 - "
            "confidence (docs/decision-rule.md). Default: a single, fixed-sample decision.",
        ),
        engine: str = typer.Option(
            "auto",
            "--engine",
            help="Where the count tables are computed: 'duckdb' (a GROUP BY in DuckDB over a .jsonl/.parquet "
            "file, or in the store's own SQL), 'python' (records in memory), 'auto' (duckdb for files of "
            f"{AUTO_FILE_MB} MB or more and stores of {AUTO_STORE_ROWS:,} responses or more). docs/scale.md",
        ),
        show_sql: bool = typer.Option(False, "--show-sql", help="Print the SQL the duckdb engine ran."),
        tables: Path | None = typer.Option(
            None,
            "--tables",
            help="Count tables given directly (CSV/JSONL/Parquet; e.g. the GROUP BY run in a warehouse) "
            "instead of records; docs/scale.md gives the columns.",
        ),
        write_tables: Path | None = typer.Option(
            None,
            "--write-tables",
            help="Also write the count tables this run decided on, in the --tables format (CSV).",
        ),
    ) -> None:
        from changeover.assessment import ConvergenceWarning, assess
        from changeover.assessment.jsonout import write_decision
        from changeover.config import load_spec

        if engine not in ("auto", "duckdb", "python"):
            raise typer.BadParameter(f"--engine must be auto, duckdb or python, not {engine!r}")
        from changeover.stats.model import SAMPLERS

        if sampler not in SAMPLERS:
            raise typer.BadParameter(f"--sampler must be {', '.join(SAMPLERS[:-1])} or {SAMPLERS[-1]}, not {sampler!r}")
        migration = load_spec(spec)
        prepared, store_url = None, None
        if tables is not None:
            from changeover.assessment.pushdown_tables import read_tables

            if records is not None:
                raise typer.BadParameter("give --tables or --records, not both")
            prepared, recs, merged = read_tables(migration, tables), [], None
            if markdown is not None or junit is not None:
                raise typer.BadParameter("--markdown and --junit read the records; not with --tables")
        elif (
            pushed := _pushed(migration, records, db, store_labels, engine, next_labels, markdown or junit)
        ) is not None:
            prepared, recs, merged = pushed.prepared, pushed.records, pushed.merged
            if show_sql:
                console.print("\n\n".join(pushed.statements), markup=False, highlight=False, soft_wrap=True)
            console.print(f"[dim]count tables by a GROUP BY over {pushed.rows:,} responses (--engine duckdb)[/]")
        else:
            recs, merged, store_url = load_assessment_records(migration, records, db, store_labels)
        print_merged(merged, store_url, records)
        with _status(
            f"fitting {len(migration.candidates)} candidate(s) x "
            f"{len(migration.dimensions)} dimension(s){'' if prepared else f' on {len(recs):,} records'}..."
        ) as progress:
            started = time.perf_counter()
            with warnings.catch_warnings():  # print_assessment prints the assessment's warnings itself
                warnings.simplefilter("ignore", ConvergenceWarning)
                result = assess(
                    migration,
                    recs,
                    seed=seed,
                    draws=draws,
                    warmup=warmup,
                    sampler=sampler,
                    chains=chains,
                    next_count=next_labels,
                    store_labels=merged,
                    looks=looks,
                    progress=progress,
                    prepared=prepared,
                )
            elapsed = time.perf_counter() - started
        print_assessment(result)
        console.print(f"[dim]fitted in {elapsed:.1f} s[/]")
        if write_tables is not None:
            from changeover.assessment.pushdown_tables import write_tables_csv

            write_tables_csv(result.comparisons, write_tables)
            console.print(f"count tables written to {write_tables}")
        if json_out:
            write_decision(result.decision, json_out)
            console.print(f"decision written to {json_out}")
        if markdown is not None or junit is not None:
            write_ci_outputs(result.decision, migration, recs, markdown, junit)
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
        from changeover.assessment import ConvergenceWarning

        if live:
            from changeover.evaluate import live_demo

            live_demo(out / "live", console=console)
            return
        spec = demo.prepare(labels=labels, seed=seed).spec
        console.print(
            f"[bold]changeover demo[/]: {spec.incumbent} -> {', '.join(spec.candidates)} "
            f"on XSTest (450 prompts); human labels kept on {labels} prompts, the GPT-4 judge's verdict on all."
        )
        with _status("preparing the demo...") as progress, warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # print_assessment prints them
            run = demo.run(out, labels=labels, seed=seed, progress=progress)
        console.print(
            f"[dim]spec {run.spec_path}, records {run.records_path} ({run.rows:,} rows), store {run.db_url}[/]"
        )
        print_assessment(run.assessment)
        console.print(f"[dim]fitted in {run.seconds:.1f} s[/]")
        _print_judge_story(run)
        console.print(f"decision: {run.decision_path}")
        console.print(f"report: {run.report_path}")
        raise typer.Exit(run.assessment.exit_code)


def _print_judge_story(run: DemoRun) -> None:
    """What the judge alone says, what the calibrated model says, what all human labels say."""
    from changeover import demo

    table = Table(
        title=f"the judge is not equally kind to every model ({demo.DIMENSION}, traffic-weighted delta, pts)",
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
    for row in run.story:
        d, j = row.calibrated, row.judge_on_candidate
        table.add_row(
            row.candidate,
            _pct(row.judge_alone),
            f"{_pct(d.mean)} [{_pct(d.lower)}, {_pct(d.upper)}]",
            _pct(row.all_labels),
            f"{j.sensitivity:.2f} / {j.specificity:.2f}",
        )
    inc = run.judge_on_incumbent
    console.print(table)
    console.print(
        f"[dim]judge sens/spec on the incumbent {run.data.spec.incumbent}: "
        f"{inc.sensitivity:.2f} / {inc.specificity:.2f}[/]"
    )
