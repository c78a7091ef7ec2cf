"""CLI commands for the gateway: `serve`, `rollout status|advance|pause|resume|rollback`, `shadow report`."""

from __future__ import annotations

import getpass
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from sqlalchemy.engine import make_url

from changeover.cli.common import DB_OPTION, console, write_json
from changeover.config import load_spec
from changeover.errors import SpecError
from changeover.rollout.config import parse_duration
from changeover.store import open_store
from changeover.store.engine import resolve_url
from changeover.store.events import list_events, now

SPEC_OPTION = typer.Option(Path("migration.yaml"), "--spec", "-s", help="The migration spec (YAML).")
REASON_OPTION = typer.Option(None, "--reason", "-r", help="Why (required; it goes into the event log).")
ACTOR_OPTION = typer.Option(None, "--actor", help="Who acts (default: operator:$USER).")
JSON_OPTION = typer.Option(None, "--json", help="Also write the result as JSON to this file.")

rollout_app = typer.Typer(
    help="Staged rollout: show the stage, advance, pause, resume or roll back.", no_args_is_help=True
)
shadow_app = typer.Typer(
    help="Shadow traffic: compare mirrored candidate answers with the incumbent's.", no_args_is_help=True
)


def _actor(actor: str | None) -> str:
    from changeover.rollout.state import check_actor

    if actor:
        return check_actor(actor)
    try:
        return f"operator:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "operator"


def _context(spec_path: Path, db: str | None):
    from changeover.shadow.config import load_settings

    spec = load_spec(spec_path)
    return spec, load_settings(spec), open_store(db)


def serve(
    spec_path: Path = SPEC_OPTION,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8300, help="Port to listen on."),
    db: str | None = DB_OPTION,
    controller: bool = typer.Option(
        True, "--controller/--no-controller", help="Run the rollout controller in this replica."
    ),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Processes sharing the port (more than one needs PostgreSQL)."
    ),
) -> None:
    """Serve the OpenAI-compatible gateway: answer from the serving model, mirror, log, roll out."""
    import uvicorn

    from changeover.shadow.app import create_app

    spec = load_spec(spec_path)
    if workers > 1 and not (url := resolve_url(db)).startswith("postgresql"):  # before a SQLite file is made
        from changeover.shadow.worker_app import needs_postgres

        raise needs_postgres(make_url(url).render_as_string(hide_password=True), workers)
    store = open_store(db)  # safe when replicas start together on a fresh database (Store.ensure)
    if workers > 1:
        from changeover.shadow.worker_app import serve_workers  # processes sharing the port, on PostgreSQL

        serve_workers(
            spec_path,
            spec,
            store,
            controller,
            host,
            port,
            log_level,
            workers,
            lambda line: console.print(line, highlight=False),
        )
        return
    app = create_app(spec, store, run_controller=controller)
    # the background writer thread holds the GIL in slices of the switch interval; a shorter one
    # hands it back to the event loop sooner (measured: p99 added latency at 200 req/s drops)
    sys.setswitchinterval(0.0005)
    console.print(f"changeover gateway on http://{host}:{port}/v1 (store {store.display_url})", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, timeout_graceful_shutdown=30)


def _print_state(state, settings) -> None:
    table = Table(title="rollout", show_header=False)
    table.add_row("incumbent", settings.incumbent)
    table.add_row("candidate", state.candidate)
    table.add_row(
        "stage",
        f"{state.stage} of {len(settings.rollout.stages) - 1} "
        f"(weights {', '.join(str(s.weight) for s in settings.rollout.stages)})",
    )
    table.add_row("weight", f"{state.weight}% of users on the candidate")
    table.add_row("status", state.status.replace("_", " "))
    table.add_row("since", state.since.isoformat(timespec="seconds"))
    table.add_row(
        "flag",
        f"{settings.rollout.flag} v{state.version}" + (f" by {state.updated_by}" if state.updated_by else ""),
    )
    console.print(table)


def _reading(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _print_hold(store, settings, state) -> dict[str, Any]:
    """The hold (time left, reverse mirror) or its end, and the last analysis' trigger readings."""
    from changeover.rollout.config import format_duration
    from changeover.rollout.hold import hold_view, last_event

    out: dict[str, Any] = {}
    view = hold_view(store, settings.rollout, state, settings.incumbent)
    if view is not None:
        out["hold"] = view.to_json()
        table = Table(title="hold (after the cut-over)", show_header=False)
        table.add_row(
            "time left",
            f"{format_duration(view.left_s)} of {format_duration(view.hold_s)}"
            + (" (paused: resume to let it end)" if view.status == "paused" else ""),
        )
        table.add_row("ends", view.ends_at.isoformat(timespec="seconds"))
        table.add_row(
            "reverse mirror",
            f"{view.reverse_mirror:.0%} to {settings.incumbent}: {view.mirrored} mirrored "
            f"of {view.served} served since the hold started",
        )
        console.print(table)
    elif state.status == "complete" and (done := last_event(store, settings.rollout, "rollout.decommission")):
        out["decommissioned"] = {"at": done.at.isoformat(), "actor": done.actor, "reason": done.reason}
        console.print(
            f"incumbent {settings.incumbent} decommissioned at {done.at.isoformat(timespec='seconds')} "
            f"by {done.actor}: {done.reason}",
            highlight=False,
            soft_wrap=True,
        )
    analysis = last_event(store, settings.rollout, "rollout.analysis") if state.status != "complete" else None
    if analysis is not None:
        out["last_analysis"] = {"at": analysis.at.isoformat(), **analysis.payload}
        table = Table(
            title=f"trigger readings ({analysis.at.isoformat(timespec='seconds')}: {analysis.payload.get('action')})"
        )
        for col in ("trigger", "phase", "value", "limit", "baseline", "samples"):
            table.add_column(col)
        for m in analysis.payload.get("measurements", []):
            table.add_row(
                m["trigger"],
                m["phase"],
                _reading(m.get("value")),
                _reading(m.get("limit")),
                _reading(m.get("baseline")),
                str(m.get("samples", 0)),
            )
        console.print(table)
    return out


@rollout_app.command("status")
def rollout_status(
    spec_path: Path = SPEC_OPTION,
    db: str | None = DB_OPTION,
    events: int = typer.Option(10, help="How many recent rollout events to show."),
    json_path: Path | None = JSON_OPTION,
) -> None:
    """Show the stage, the hold after the cut-over, the last trigger readings, the recent rollout events
    and whom the candidate has answered."""
    from changeover.rollout.state import read_state
    from changeover.shadowlog.ledger import contamination_subjects

    _spec, settings, store = _context(spec_path, db)
    state = read_state(store, settings.rollout, settings.candidate)
    recent = list_events(store, subject=settings.rollout.flag, kind_prefix="rollout.")[-events:] if events else []
    touched = contamination_subjects(store, state.candidate)
    failed = list_events(store, subject=settings.rollout.flag, kind_prefix="rollout.change_failed")
    _print_state(state, settings)
    hold = _print_hold(store, settings, state)
    if recent:
        table = Table(title="recent events")
        for col in ("at", "kind", "actor", "reason"):
            table.add_column(col)
        for e in recent:
            table.add_row(e.at.isoformat(timespec="seconds"), e.kind, e.actor, e.reason or "")
        console.print(table)
    console.print(
        f"contamination ledger: {len(touched)} users/sessions answered by {state.candidate} "
        f"({sum(t.requests for t in touched)} requests)",
        highlight=False,
    )
    if failed:
        last = failed[-1]
        console.print(
            f"changes the store could not take at first: {len(failed)}; last: "
            f"{last.payload.get('action')} by {last.actor} at {last.at.isoformat(timespec='seconds')}, "
            f"{last.payload.get('outcome')} after {last.payload.get('attempts')} attempts "
            f"over {last.payload.get('failed_for_s')} s ({last.payload.get('first_error')})",
            highlight=False,
            soft_wrap=True,
        )
    if json_path:
        write_json(
            {
                "rollout": state.to_json(),
                **hold,
                "events": [
                    {
                        "at": e.at.isoformat(),
                        "kind": e.kind,
                        "actor": e.actor,
                        "reason": e.reason,
                        "payload": e.payload,
                    }
                    for e in recent
                ],
                "contamination": [{"subject": t.subject, "requests": t.requests} for t in touched],
                "failed_changes": [
                    {"at": e.at.isoformat(), "actor": e.actor, "reason": e.reason, "payload": e.payload} for e in failed
                ],
            },
            json_path,
        )


def _operator(action_name: str):
    def command(
        spec_path: Path = SPEC_OPTION,
        db: str | None = DB_OPTION,
        reason: str | None = REASON_OPTION,
        actor: str | None = ACTOR_OPTION,
        json_path: Path | None = JSON_OPTION,
    ) -> None:
        from changeover.rollout import state as rollout_state

        _spec, settings, store = _context(spec_path, db)
        current = rollout_state.read_state(store, settings.rollout, settings.candidate)
        action = getattr(rollout_state, action_name)
        new = action(store, settings.rollout, current, _actor(actor), reason)
        console.print(
            f"{action_name}: stage {current.stage} ({current.weight}%) -> stage {new.stage} "
            f"({new.weight}%), {new.status.replace('_', ' ')}; every gateway follows within a second",
            highlight=False,
        )
        if json_path:
            write_json({"rollout": new.to_json()}, json_path)

    command.__doc__ = {
        "advance": "Move to the next stage (operator decision, with a reason).",
        "pause": "Hold the current weight; the controller stops advancing.",
        "resume": "Let the controller advance again.",
        "rollback": "Send everyone back to the incumbent now (it stays warm).",
    }[action_name]
    return command


for _name in ("advance", "pause", "resume", "rollback"):
    rollout_app.command(_name)(_operator(_name))


def _fmt(value: Any, pct: bool = False, money: bool = False) -> str:
    if value is None:
        return "-"
    if money:
        return f"{value:,.4f}"
    return f"{100 * value:.1f}%" if pct else f"{value:,.1f}"


def _versus(row: dict[str, Any], key: str, pct: bool = False, money: bool = False) -> str:
    """The candidate's value, the incumbent's on the same requests in brackets."""
    return f"{_fmt(row['candidate_stats'][key], pct, money)} ({_fmt(row['incumbent_stats'][key], pct, money)})"


def _prompts(row: dict[str, Any]) -> str:
    """The prompt variants the candidate was sent (the incumbent's in brackets)."""

    def names(stats: dict[str, Any]) -> str:
        return ", ".join(stats.get("prompts") or {}) or "-"

    return f"{names(row['candidate_stats'])} ({names(row['incumbent_stats'])})"


def _deprecations(row: dict[str, Any]) -> str:
    """Answers that carried an upstream deprecation notice, with the earliest sunset (incumbent's in brackets)."""

    def cell(stats: dict[str, Any]) -> str:
        d = stats.get("deprecations") or {}
        n, sunset = d.get("answers", 0), d.get("earliest_sunset")
        return f"{n} sunset {sunset[:10]}" if n and sunset else str(n)

    return f"{cell(row['candidate_stats'])} ({cell(row['incumbent_stats'])})"


REPORT_LINES: list[tuple[str, Any]] = [
    ("pairs", lambda r: str(r["pairs"])),
    ("prompt variant", _prompts),
    ("semantic equivalence (words)", lambda r: _fmt(r["equivalence_rate"], True)),
    ("better / worse / different (rule)", lambda r: "{better} / {worse} / {different}".format(**r["disagreements"])),
    (
        "latency p50 ms",
        lambda r: (
            f"{_fmt(r['candidate_stats']['latency_ms']['p50'])} ({_fmt(r['incumbent_stats']['latency_ms']['p50'])})"
        ),
    ),
    (
        "latency p95 ms",
        lambda r: (
            f"{_fmt(r['candidate_stats']['latency_ms']['p95'])} ({_fmt(r['incumbent_stats']['latency_ms']['p95'])})"
        ),
    ),
    (
        "latency p99 ms",
        lambda r: (
            f"{_fmt(r['candidate_stats']['latency_ms']['p99'])} ({_fmt(r['incumbent_stats']['latency_ms']['p99'])})"
        ),
    ),
    ("tokens in / 1k requests", lambda r: _versus(r, "tokens_in_per_1k")),
    ("tokens out / 1k requests", lambda r: _versus(r, "tokens_out_per_1k")),
    ("cost USD / 1k requests", lambda r: _versus(r, "cost_usd_per_1k", money=True)),
    ("tokens estimated (no usage)", lambda r: _versus(r, "tokens_estimated_rate", True)),
    ("refusal rate", lambda r: _versus(r, "refusal_rate", True)),
    ("error rate", lambda r: _versus(r, "error_rate", True)),
    ("malformed rate", lambda r: _versus(r, "malformed_rate", True)),
    ("timeout rate", lambda r: _versus(r, "timeout_rate", True)),
    ("format drift", lambda r: _fmt(r["format_drift_rate"], True)),
    ("deprecation notices (earliest sunset)", lambda r: _deprecations(r)),
]


def _judged_lines(rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """One line for the judged pairs, one per judge signal (candidate pass rate, the incumbent's in brackets)."""
    names = sorted({n for row in rows for n in (row.get("judged") or {}).get("signals", {})})

    def rate(name: str) -> Any:
        def cell(row: dict[str, Any]) -> str:
            r = (row.get("judged") or {}).get("signals", {}).get(name)
            return "-" if r is None else f"{_fmt(r['candidate'], True)} ({_fmt(r['incumbent'], True)})"

        return cell

    lines: list[tuple[str, Any]] = [("judged pairs", lambda r: str((r.get("judged") or {}).get("pairs", 0)))]
    return lines + [(f"judge: {n}", rate(n)) for n in names]


def _coverage_line(row: dict[str, Any]) -> str | None:
    cov = row.get("coverage")
    if not cov:
        return None
    return (
        f"shadow period: {cov['first'][:16]} to {cov['last'][:16]} UTC ({cov['days']:.1f} days), "
        f"weekdays {', '.join(cov['weekdays'])}, {cov['week_hours']} of the week's 168 hours"
    )


def _report_table(candidate: str, incumbent: str, rows: list[dict[str, Any]], start) -> Table:
    table = Table(title=f"shadow: {candidate} (vs {incumbent} in brackets) since {start:%Y-%m-%d %H:%M} UTC")
    table.add_column("")
    for row in rows:
        table.add_column(row["request_type"], justify="right")
    from changeover.shadow.disagreements import TABLE_LINES
    from changeover.shadow.keepalive import TABLE_LINES as KEEP_ALIVE_LINES

    compared = TABLE_LINES if any(r.get("comparison") for r in rows) else []
    kept = KEEP_ALIVE_LINES if any(r.get("keep_alive") for r in rows) else []
    for label, cell in [*REPORT_LINES, *_judged_lines(rows), *compared, *kept]:
        table.add_row(label, *(cell(row) for row in rows))
    overall = next((r for r in rows if r["request_type"] == "all"), None)
    if overall is not None and (line := _coverage_line(overall)):
        table.caption = line
    return table


@shadow_app.command("report")
def shadow_report(
    spec_path: Path = SPEC_OPTION,
    db: str | None = DB_OPTION,
    since: str = typer.Option("24h", help="How far back: 30m, 24h, 7d ..."),
    json_path: Path | None = JSON_OPTION,
    export: Path | None = typer.Option(
        None, help="Write the mirrored pairs as records (JSONL) for `changeover assess`."
    ),
    examples: int = typer.Option(
        3, min=0, help="Pairs shown per class the comparison judge found (request and both answers, truncated)."
    ),
) -> None:
    """Compare the candidates' mirrored answers with the incumbent's, per request type."""
    from changeover.shadow.disagreements import example_lines
    from changeover.shadow.report import build_report
    from changeover.shadowlog.answers import load_answers, pairs
    from changeover.shadowlog.export import export_pairs

    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise SpecError(f"--since: {exc}") from None
    spec, settings, store = _context(spec_path, db)
    start = now() - timedelta(seconds=seconds)
    report = build_report(
        store, settings.incumbent, settings.mirror_to, since=start, examples=examples, settings=settings
    )
    for candidate in settings.mirror_to:
        rows = [r for r in report.rows if r["candidate"] == candidate]
        console.print(_report_table(candidate, settings.incumbent, rows, start))
        for line in example_lines(rows[0], settings.incumbent) if rows else []:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if json_path:
        write_json(report.to_json(), json_path)
    if export:
        answers = load_answers(store, since=start, models=[settings.incumbent, *settings.mirror_to], with_request=True)
        n = sum(
            export_pairs(
                pairs(answers, settings.incumbent, c),
                export.with_suffix(f".{c}.jsonl") if len(settings.mirror_to) > 1 else export,
            )
            for c in settings.mirror_to
        )
        console.print(f"wrote {n} records to {export}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `serve`, `rollout ...` and `shadow report` to the main app."""
    app.command("serve")(serve)
    app.add_typer(rollout_app, name="rollout")
    app.add_typer(shadow_app, name="shadow")
