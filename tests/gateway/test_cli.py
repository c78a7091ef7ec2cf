"""`changeover rollout ...` and `changeover shadow report` on a real store."""

from __future__ import annotations

import json

from tests.gateway.exchanges import exchange

from changeover.cli import run
from changeover.records import read_records
from changeover.shadow.config import Upstream
from changeover.shadow.rows import RowMaker
from changeover.shadow.writer import LogWriter
from changeover.store import open_store
from changeover.store.events import list_events


def test_rollout_commands_change_the_flag_with_reasons(make_spec, sqlite_url, tmp_path, capsys):
    spec = str(make_spec())
    base = ["--spec", spec, "--db", sqlite_url]
    assert run(["rollout", "advance", *base, "--reason", "offline GO", "--actor", "ana"]) == 0
    assert run(["rollout", "pause", *base, "--reason", "freeze"]) == 0
    assert run(["rollout", "resume", *base, "--reason", "thaw"]) == 0
    assert run(["rollout", "rollback", *base, "--reason", "latency"]) == 0
    out = tmp_path / "status.json"
    capsys.readouterr()
    assert run(["rollout", "status", *base, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rolled back" in printed and "latency" in printed
    status = json.loads(out.read_text())
    assert status["rollout"]["weight"] == 0 and status["rollout"]["status"] == "rolled_back"
    assert [e["kind"] for e in status["events"]] == [
        "rollout.advance",
        "rollout.pause",
        "rollout.resume",
        "rollout.rollback",
    ]
    store = open_store(sqlite_url)
    assert list_events(store, kind_prefix="rollout.advance")[0].actor == "ana"


def test_user_errors_exit_2_with_the_field_named(make_spec, sqlite_url, tmp_path, capsys):
    spec = str(make_spec())
    assert run(["rollout", "rollback", "--spec", spec, "--db", sqlite_url]) == 2
    assert "give a reason" in capsys.readouterr().err
    bad = str(make_spec(rollout={"stages": [{"weight": 5}, {"weight": "lots"}]}))
    assert run(["rollout", "status", "--spec", bad, "--db", sqlite_url]) == 2
    assert "rollout.stages.1.weight" in capsys.readouterr().err
    missing = str(make_spec(gateway={"upstreams": {"old": {"base_url": "http://127.0.0.1:1/v1"}}}))
    assert run(["serve", "--spec", missing, "--db", sqlite_url]) == 2
    assert "gateway.upstreams" in capsys.readouterr().err and "new" in capsys.readouterr().err + "new"
    typo = str(make_spec(shadow={"sampel": 0.5}))
    assert run(["shadow", "report", "--spec", typo, "--db", sqlite_url]) == 2
    assert "shadow.sampel" in capsys.readouterr().err
    assert run(["shadow", "report", "--spec", spec, "--db", sqlite_url, "--since", "yesterday"]) == 2


def test_shadow_report_and_export_as_records(make_spec, sqlite_url, tmp_path, capsys):
    store = open_store(sqlite_url)
    up = {"old": Upstream(base_url="http://x/v1", output_per_mtok=10.0), "new": Upstream(base_url="http://y/v1")}
    writer = LogWriter(store, RowMaker(up, {"new"})).start()
    for i in range(20):
        kind = "billing" if i % 2 else "chitchat"
        writer.submit(
            exchange(
                f"r{i}",
                "old",
                text='{"total": 12}' if kind == "billing" else "Hello there!",
                request_type=kind,
                latency=100 + i,
            )
        )
        if kind == "billing":
            cand = '```json\n{"total": 12}\n```' if i < 10 else '{"total": 12}'
        else:
            cand = "I'm sorry, but I can't help with that." if i < 6 else "Hello there!"
        writer.submit(
            exchange(
                f"r{i}",
                "new",
                "mirror",
                text=cand,
                request_type=kind,
                latency=50 + i,
                error="timeout" if i == 19 else None,
            )
        )
    writer.close()
    out, records = tmp_path / "report.json", tmp_path / "pairs.jsonl"
    spec = str(make_spec())
    assert (
        run(["shadow", "report", "--spec", spec, "--db", sqlite_url, "--json", str(out), "--export", str(records)]) == 0
    )
    rows = {r["request_type"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"all", "billing", "chitchat"}
    billing, chitchat = rows["billing"], rows["chitchat"]
    assert billing["pairs"] == 10 and billing["candidate_stats"]["timeout_rate"] == 0.1
    assert billing["format_drift_rate"] == 5 / 9  # JSON wrapped in code fences on 5 of 9 answered pairs
    assert chitchat["candidate_stats"]["refusal_rate"] == 0.3 and chitchat["incumbent_stats"]["refusal_rate"] == 0.0
    assert chitchat["disagreements"]["worse"] == 3 and chitchat["equivalence_rate"] == 0.7
    assert rows["all"]["incumbent_stats"]["cost_usd_per_1k"] > 0
    assert rows["all"]["candidate_stats"]["latency_ms"]["p50"] < rows["all"]["incumbent_stats"]["latency_ms"]["p50"]
    printed = capsys.readouterr().out
    assert "billing" in printed and "chitchat" in printed
    exported = read_records(records)
    assert len(exported) == 40 and {r.model for r in exported} == {"old", "new"}
    refused = [r for r in exported if r.model == "new" and r.signals["answered"] == 0]
    assert len(refused) == 4 and {r.segment["request_type"] for r in exported} == {"billing", "chitchat"}
