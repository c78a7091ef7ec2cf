"""The store goes away and comes back under a running gateway: nothing acknowledged is lost or doubled,
and a rollout change decided meanwhile lands exactly once; under a re-embed job, the resume keeps what was
stored and redoes nothing.

PostgreSQL is a throwaway cluster of this suite (``tests/faults/pg.py``), crashed
with ``pg_ctl stop -m immediate`` or cut with ``pg_terminate_backend``; SQLite is
locked by another process for longer than its busy timeout.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import create_engine, select
from tests.faults.record import note, repeats
from tests.faults.traffic import Traffic, served_rows, wait_until
from tests.gateway.helpers import GatewayProcess, GatewayServer
from tests.gateway.test_controller import config, log
from tests.gateway.test_processes import model_for

from changeover.cli import run
from changeover.embeddings.schema import vectors
from changeover.errors import StoreUnavailable
from changeover.rollout import state as rs
from changeover.rollout.controller import Controller
from changeover.rollout.routing import bucket
from changeover.store import open_store
from changeover.store.events import list_events
from changeover.store.flags import get_flag

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("run_index", repeats())]

TOKEN = "fault-admin-token"


def metric(text: str, name: str) -> float:
    """The sum of a metric's series in Prometheus text."""
    values = [float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    assert values, f"{name} not in /metrics"
    return sum(values)


def scrape(url: str) -> str:
    return httpx.get(url + "/metrics", timeout=10).text


def candidate_user() -> str:
    return next(f"user-{i}" for i in range(1000) if bucket("changeover.rollout", f"user-{i}") < 50)


def test_postgres_crash_and_restart_during_a_gateway_run(make_spec, pg_cluster, pg_db, run_index):
    spec = make_spec(shadow={"flush_interval": 0.05})
    gw = GatewayProcess(spec, pg_db).wait_ready()
    traffic = Traffic(gw.url).start()
    try:
        traffic.wait_for(40)
        pg_cluster.stop("immediate")  # a crash: every connection cut, nothing checkpointed
        down_at, before = time.monotonic(), traffic.count()
        traffic.wait_for(80)  # users are still answered: the request path never waits on the store
        down = scrape(gw.url)
        assert metric(down, "changeover_log_store_errors_total") > 0  # the writer saw it and holds the rows
        assert metric(down, "changeover_log_lost_total") == 0
        pg_cluster.start()
        outage_s, during = time.monotonic() - down_at, traffic.count() - before
        traffic.wait_for(40)
    finally:
        traffic.stop()
        gw.terminate()
        gw.kill()
    assert set(traffic.statuses) == {200}, traffic.statuses
    with open_store(pg_db) as store:
        rows = served_rows(store)
    assert traffic.acknowledged <= set(rows)  # nothing acknowledged is lost
    assert max(rows.values()) == 1  # nor written twice
    note(
        "outage.pg_crash",
        acknowledged=len(traffic.acknowledged),
        answered_while_down=during,
        outage_s=round(outage_s, 2),
        writer_store_errors=metric(down, "changeover_log_store_errors_total"),
        lost=len(traffic.acknowledged - set(rows)),
        doubled=sum(n > 1 for n in rows.values()),
    )


def test_connections_cut_again_and_again_during_a_gateway_run(make_spec, pg_cluster, pg_db, run_index):
    spec = make_spec(shadow={"flush_interval": 0.02, "batch_size": 20})
    store = open_store(pg_db)
    server = GatewayServer(spec, store, run_controller=False).start()
    traffic = Traffic(server.url).start()
    try:
        cut = 0
        for _ in range(5):
            traffic.wait_for(20)
            cut += pg_cluster.terminate_backends(pg_db.rsplit("/", 1)[1])
        traffic.wait_for(20)
    finally:
        traffic.stop()
        server.stop()
    assert cut >= 3, cut  # the gateway's pooled connections were really cut (a round may find none open)
    rows = served_rows(store)
    store.dispose()
    assert set(traffic.statuses) == {200}, traffic.statuses
    assert traffic.acknowledged <= set(rows) and max(rows.values()) == 1
    note("outage.pg_terminate", connections_cut=cut, acknowledged=len(traffic.acknowledged), lost=0, doubled=0)


def test_sqlite_locked_longer_than_its_busy_timeout(make_spec, sqlite_url, monkeypatch, tmp_path, run_index):
    monkeypatch.setenv("CHANGEOVER_SQLITE_BUSY_MS", "100")
    spec = make_spec(shadow={"flush_interval": 0.02})
    store = open_store(sqlite_url)
    server = GatewayServer(spec, store, run_controller=False).start()
    writer = server.service.writer
    traffic = Traffic(server.url).start()
    locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None, timeout=10)
    try:
        traffic.wait_for(20)
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        wait_until(lambda: writer.store_errors >= 3, timeout=30, what="the writer to find the file locked")
        traffic.wait_for(30)  # answered while the store is locked
        locker.execute("COMMIT")
        traffic.wait_for(20)
    finally:
        locker.close()
        traffic.stop()
        server.stop()
    rows = served_rows(store)
    store.dispose()
    assert writer.lost == 0 and writer.dropped == 0
    assert traffic.acknowledged <= set(rows) and max(rows.values()) == 1
    note("outage.sqlite_lock", acknowledged=len(traffic.acknowledged), writer_store_errors=writer.store_errors, lost=0)


def test_operator_rollback_while_postgres_is_down(make_spec, pg_cluster, pg_db, capsys, run_index):
    spec = make_spec()
    gw = GatewayProcess(spec, pg_db, env={"CHANGEOVER_ADMIN_TOKEN": TOKEN}).wait_ready()
    auth = {"authorization": f"Bearer {TOKEN}"}
    user = candidate_user()
    try:
        assert run(["rollout", "advance", "--spec", str(spec), "--db", pg_db, "--reason", "offline GO"]) == 0
        wait_until(lambda: model_for(gw.url, user) == "new", 10, "the gateway to follow the advance")
        pg_cluster.stop("immediate")
        r = httpx.post(gw.url + "/admin/rollback", json={"reason": "candidate misbehaves"}, headers=auth, timeout=30)
        assert r.status_code == 202, r.text
        assert r.json()["pending"]["action"] == "rollback" and r.json()["rollout"]["weight"] == 0
        assert model_for(gw.url, user) == "old"  # in force on this gateway at once
        assert metric(scrape(gw.url), 'changeover_rollout_change_pending{action="rollback"}') == 1
        status = httpx.get(gw.url + "/admin/status", headers=auth, timeout=30).json()  # still answers
        assert status["store_status"].startswith("unavailable") and status["pending_change"]["action"] == "rollback"
        assert status["rollout"]["status"] == "rolled_back" and status["contaminated_subjects"] is None
        wait_until(lambda: metric(scrape(gw.url), "changeover_rollout_change_failures_total") >= 3, 30, "retries")
        another = httpx.post(gw.url + "/admin/pause", json={"reason": "x"}, headers=auth, timeout=30)
        assert another.status_code == 503  # one pending change at a time, said plainly
        pg_cluster.start()
        wait_until(lambda: metric(scrape(gw.url), "changeover_rollout_changes_landed_after_failure_total") == 1, 30)
        assert metric(scrape(gw.url), "changeover_rollout_change_pending") == 0
        assert model_for(gw.url, user) == "old"
    finally:
        gw.kill()
    with open_store(pg_db) as store:
        kinds = [e.kind for e in list_events(store, kind_prefix="rollout.")]
        failed = list_events(store, kind_prefix="rollout.change_failed")
        rollback = list_events(store, kind_prefix="rollout.rollback")
        flag = get_flag(store, "changeover.rollout")
    assert kinds.count("rollout.rollback") == 1 and kinds.count("rollout.change_failed") == 1
    assert failed[0].payload["outcome"] == "landed" and failed[0].payload["attempts"] >= 3
    assert rollback[0].payload["change"] == flag.value["change"] == failed[0].payload["change"]
    assert rollback[0].reason == "candidate misbehaves" and flag.value["status"] == "rolled_back"
    capsys.readouterr()
    assert run(["rollout", "status", "--spec", str(spec), "--db", pg_db]) == 0
    assert "changes the store could not take at first: 1" in capsys.readouterr().out
    note(
        "rollout.operator_rollback_db_down",
        attempts=failed[0].payload["attempts"],
        failed_for_s=failed[0].payload["failed_for_s"],
        rollback_events=kinds.count("rollout.rollback"),
    )


def test_controller_rollback_decided_as_the_store_goes_down(pg_cluster, pg_db, run_index):
    store = open_store(pg_db)
    cfg = config(triggers=[{"metric": "p_regression", "above": 0.5, "min_samples": 5}])
    rs.advance(store, cfg, rs.read_state(store, cfg, "new"), "operator:ana", "offline GO")
    log(store, 30)

    def crash_then_regress(_trigger, window):  # the window was read; the store dies before the write
        pg_cluster.stop("immediate")
        return 0.97, len(window.keys)

    controller = Controller(store, cfg, "old", "new", regression=crash_then_regress)
    decision = controller.tick()
    assert decision.action == "rollback" and decision.pending and decision.state.weight == 0
    assert controller.tick().action == "hold"  # waits for the store; no analysis meanwhile
    with pytest.raises(StoreUnavailable):  # an outage is never reported as a lost race
        rs.read_state(store, cfg, "new")
    wait_until(lambda: controller.tick().pending and controller.retrier.failed_attempts >= 2, 10, "a retry")
    pg_cluster.start()
    wait_until(lambda: controller.tick().action == "rollback", 20, "the rollback to land")
    assert controller.retrier.pending is None
    assert controller.tick().action == "idle"  # rolled back: nothing more to do, nothing written twice
    events = list_events(store, kind_prefix="rollout.")
    store.dispose()
    kinds = [e.kind for e in events]
    assert kinds == ["rollout.advance", "rollout.analysis", "rollout.change_failed", "rollout.rollback"]
    assert events[1].payload["action"] == "rollback"  # the analysis landed with its decision
    assert events[2].payload["attempts"] >= 2 and events[3].actor == "controller"
    note(
        "rollout.controller_rollback_db_down",
        attempts=events[2].payload["attempts"],
        failed_for_s=events[2].payload["failed_for_s"],
        rollback_events=kinds.count("rollout.rollback"),
    )


@pytest.fixture(scope="module")
def reembed_outage(pg_cluster, cranfield, tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict, int]:
    """A paced re-embed of 24 documents on PostgreSQL; the server crashes once some vectors are stored and
    restarts; then the job is run again. (The crashed run, the resume's result, the vectors stored.)"""
    tmp = tmp_path_factory.mktemp("reembed-outage")
    corpus = tmp / "corpus.jsonl"
    corpus.write_text("\n".join((cranfield / "corpus.jsonl").read_text().splitlines()[:24]) + "\n")
    db = pg_cluster.create_database()
    base = [sys.executable, "-c", "from changeover.cli import main; main()", "embeddings", "reembed", "--to", "minilm"]
    base += ["--corpus", str(corpus), "--batch", "2", "--no-progress", "--db", db]
    proc = subprocess.Popen([*base, "--rate", "4/s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    engine = create_engine(db)

    def stored() -> int:
        try:
            with engine.connect() as conn:
                return len(conn.execute(select(vectors.c.doc_id)).all())
        except Exception:  # noqa: BLE001 - tables not created yet
            return 0

    try:
        wait_until(lambda: stored() >= 6, 120, "the job to store some vectors")
    finally:
        engine.dispose()
    pg_cluster.stop("immediate")
    try:
        printed, err = proc.communicate(timeout=60)  # the job meets the dead store
    finally:
        pg_cluster.start()
    crashed = subprocess.CompletedProcess(proc.args, proc.returncode, printed, err)
    out = tmp / "resume.json"
    resumed = subprocess.run([*base, "--rate", "off", "--json", str(out)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    with open_store(db) as store, store.engine.connect() as conn:
        rows = len(conn.execute(select(vectors.c.doc_id)).all())
    return crashed, json.loads(out.read_text()), rows


def test_reembed_through_a_postgres_crash_resumes_with_nothing_redone(reembed_outage, run_index):
    crashed, result, rows = reembed_outage
    assert crashed.returncode != 0  # it stopped; nothing acknowledged was claimed
    assert result["already"] + result["embedded"] == 24 and result["complete"] is True
    assert result["already"] >= 6 and rows == 24  # what was stored was kept, each document once
    if run_index == 0:  # one job run, shared by the repeats
        note(
            "outage.reembed_pg_crash",
            exit=crashed.returncode,
            stderr_lines=len(crashed.stderr.splitlines()),
            kept=result["already"],
            resumed=result["embedded"],
        )


def test_reembed_meeting_a_dead_store_says_so_in_one_line(reembed_outage, run_index):
    crashed, _result, _rows = reembed_outage
    assert crashed.returncode == 2 and len(crashed.stderr.strip().splitlines()) <= 2
