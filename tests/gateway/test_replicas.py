"""Gateway replicas as real processes on one PostgreSQL: one active controller (by lease), one rollback,
one judging budget; and `serve --workers 2` (processes sharing the port)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select
from tests.evaluate.helpers import judge_reply
from tests.gateway.helpers import GatewayProcess, chat, free_port

from changeover.cli import run
from changeover.rollout.routing import bucket
from changeover.shadow.app import CONTROLLER_LEASE
from changeover.shadow.shared_budget import budget_windows
from changeover.store import open_store
from changeover.store.events import list_events
from changeover.store.lease import lease_holder

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TOKEN = "replica-token-5c1e"
TTL = 3.0  # gateway.controller_lease_ttl
HELD = re.compile(r'^changeover_controller_lease_held\{replica="([^"]+)"\} (\d)', re.M)


def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def leases(replicas: list[GatewayProcess]) -> list[tuple[str, bool]] | None:
    """Every replica's (owner, holds the lease), or None while one of them does not answer yet."""
    got = [lease_of(r.url) for r in replicas]
    return None if None in got else got  # type: ignore[return-value]


def lease_of(url: str) -> tuple[str, bool] | None:
    """(replica, holds the controller lease) from a replica's /metrics; None when it does not answer."""
    try:
        text = httpx.get(url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    replica, held = HELD.search(text).groups()
    return replica, held == "1"


def status(url: str) -> dict[str, Any]:
    r = httpx.get(url + "/admin/status", headers={"authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert r.status_code == 200
    return r.json()


def start(spec, pg_url: str, n: int, **kwargs: Any) -> list[GatewayProcess]:
    replicas = [GatewayProcess(spec, pg_url, env={"CHANGEOVER_ADMIN_TOKEN": TOKEN}, **kwargs) for _ in range(n)]
    try:
        for r in replicas:
            r.wait_ready(timeout=60)
    except BaseException:
        for r in replicas:
            r.kill()
        raise
    return replicas


def test_one_controller_one_rollback_and_a_takeover_within_the_ttl(make_spec, pg_url, fake):
    spec = make_spec(
        gateway={"controller_lease_ttl": TTL},
        rollout={
            "stages": [{"weight": 0}, {"weight": 50, "min_duration": "1h"}, {"weight": 100}],
            "triggers": [{"metric": "error_rate", "above_baseline": 0.01, "min_samples": 5}],
            "window": "60s",
            "interval": 0.2,
        },
    )
    assert run(["rollout", "advance", "--spec", str(spec), "--db", pg_url, "--reason", "offline GO"]) == 0
    replicas = start(spec, pg_url, 2, controller=True)
    store = open_store(pg_url)
    try:
        # exactly one replica holds the lease - the one the store names - and only it runs the analysis
        owners = until(
            lambda: (got := leases(replicas)) and sum(held for _, held in got) == 1 and got, 20, "one holder"
        )
        (holder,) = [i for i, (_, held) in enumerate(owners) if held]
        other = 1 - holder
        assert lease_holder(store, CONTROLLER_LEASE).owner == owners[holder][0]
        until(lambda: status(replicas[holder].url)["last_analysis"], 10, "the holder's analysis")
        assert status(replicas[other].url)["last_analysis"] is None

        # the candidate fails for every user on it: the breach rolls back once, by the holder
        fake.set("new", fail_rate=1.0, fail_status=500)
        users = [f"user-{i}" for i in range(40)]  # about half on the candidate, half the incumbent's baseline
        assert 10 <= sum(bucket("changeover.rollout", u) < 50 for u in users) <= 30
        for i, user in enumerate(users):
            r = httpx.post(
                replicas[i % 2].url + "/v1/chat/completions", json=chat(), headers={"x-changeover-user": user}
            )
            assert r.status_code == 200  # the warm incumbent answered as the fallback
        try:
            until(lambda: list_events(store, kind_prefix="rollout.rollback"), 20, "the rollback")
        except AssertionError:
            raise AssertionError(status(replicas[holder].url)["last_analysis"]) from None
        # both replicas follow the rolled-back flag; the holder's next analysis runs see it rolled back
        until(lambda: all(status(r.url)["rollout"]["status"] == "rolled_back" for r in replicas), 5, "both follow")
        until(lambda: status(replicas[holder].url)["last_analysis"]["action"] == "idle", 5, "an idle run")
        (rollback,) = list_events(store, kind_prefix="rollout.rollback")
        assert rollback.actor == "controller" and "error_rate" in rollback.reason
        assert status(replicas[other].url)["last_analysis"] is None  # it never analysed

        # SIGKILL the holder: the other takes the lease over once the row expired (the TTL after the last
        # renewal), at its next renewal (a third of the TTL later); the store's timestamps say when
        dead = lease_holder(store, CONTROLLER_LEASE)
        replicas[holder].proc.send_signal(signal.SIGKILL)
        until(lambda: (lease_of(replicas[other].url) or ("", False))[1], 2 * TTL + 10, "the takeover")
        took = lease_holder(store, CONTROLLER_LEASE)
        assert took.owner == owners[other][0]
        assert dead.expires_at <= took.acquired_at < dead.expires_at + 2 * TTL  # loaded machine: slack for the tick
        until(lambda: status(replicas[other].url)["last_analysis"], 5, "the new holder's analysis")
        assert len(list_events(store, kind_prefix="rollout.rollback")) == 1
    finally:
        store.dispose()
        for r in replicas:
            r.kill()


def judged_spec(make_spec, rpm: int):
    path = make_spec(shadow={"judge": {"requests_per_minute": rpm, "concurrency": 1}})
    raw = yaml.safe_load(path.read_text())
    raw["dimensions"] = {"correctness": {"margin": 0.1}}
    raw["models"] = {"judge": {"base_url": raw["gateway"]["upstreams"]["old"]["base_url"], "max_retries": 0}}
    raw["judges"] = {"correctness": {"kind": "llm", "model": "judge", "rubric": "correctness"}}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_judging_budget_is_shared_across_replicas(make_spec, pg_url, fake):
    rpm = 4  # two judge calls a pair (incumbent's and candidate's answers): two pairs a minute in all
    fake.set("new", reply="Paris.")
    fake.set("judge", reply=judge_reply)
    spec = judged_spec(make_spec, rpm)
    replicas = start(spec, pg_url, 2)
    store = open_store(pg_url)
    first_window = time.time() // 60
    try:
        for i in range(12):
            r = httpx.post(replicas[i % 2].url + "/v1/chat/completions", json=chat(f"capital of France #{i}"))
            assert r.status_code == 200

        def settled() -> list[dict[str, Any]] | None:
            judges = [status(r.url)["judge"] for r in replicas]
            done = all(
                j["offered"] == 6 and j["queued"] == 0 and j["judged"] + j["waiting"] + j["errors"] == j["offered"]
                for j in judges
            )
            return judges if done and sum(j["judge_calls"] for j in judges) == fake.calls["judge"] else None

        judges = until(settled, 30, "both judging workers settle (judged or waiting for the budget)")
        last_window = time.time() // 60
        with store.engine.connect() as conn:
            rows = conn.execute(select(budget_windows.c.period, budget_windows.c.spent)).all()
    finally:
        store.dispose()
        for r in replicas:
            r.kill()
    windows = int(last_window - first_window) + 1  # usually 1: the test ran inside one minute
    minutes = {p: s for p, s in rows if p.startswith("m")}
    # each replica alone would have made 4 calls a minute (8 in all): together they made at most 4
    assert fake.calls["judge"] <= rpm * windows
    assert all(spent <= rpm for spent in minutes.values()) and sum(minutes.values()) == fake.calls["judge"]
    assert all(j["paused"].get("requests_per_minute", 0) >= 1 for j in judges)  # both met the shared limit
    assert sum(j["judged"] for j in judges) >= 1


def test_serve_with_two_workers_answers_from_both(make_spec, pg_url, fake, capsys):
    spec = make_spec()
    sqlite = f"sqlite:///{spec.parent / 'one.db'}"
    assert run(["serve", "--spec", str(spec), "--db", sqlite, "--workers", "2"]) == 2
    assert "use PostgreSQL for several workers/replicas" in capsys.readouterr().err
    gw = GatewayProcess(spec, pg_url, extra=("--workers", "2"))
    seen: set[str] = set()
    try:
        gw.wait_ready(timeout=90)  # three processes import and start on a loaded machine

        def both() -> bool:
            with httpx.Client(timeout=5) as client:  # a new connection each time: any worker may accept it
                r = client.post(gw.url + "/v1/chat/completions", json=chat())
                assert r.status_code == 200 and r.headers["x-changeover-model"] == "old"
            seen.add(lease_of(gw.url)[0])
            return len(seen) == 2

        until(both, 60, "answers from both workers")
        pids = {int(owner.split(":")[1]) for owner in seen}
        assert gw.proc.pid not in pids  # the parent supervises, the workers serve
        assert gw.terminate() == 0  # SIGTERM: the parent stops both workers gracefully
        for pid in pids:
            until(lambda pid=pid: not _alive(pid), 10, f"worker {pid} exits")
    finally:
        workers = set(_children(gw.proc.pid)) | {int(owner.split(":")[1]) for owner in seen}
        gw.kill()  # the parent first: it cannot start new workers then
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (uvicorn's workers), read from /proc."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_workers_reports_a_spec_error_once_before_starting_workers(make_spec, pg_url):
    spec = make_spec(shadow={"judge": {}})  # no judges: section, which only create_app checks
    done = subprocess.run(
        [str(Path(sys.executable).parent / "changeover"), "serve", "--spec", str(spec), "--db", pg_url]
        + ["--port", str(free_port()), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert out.count("error:") == 1 and "judges" in out, out
    assert "changeover gateway on" not in out  # no worker started
    assert "Traceback" not in out


def test_a_worker_that_cannot_start_stops_the_supervisor_with_its_message(tmp_path, pg_url):
    """A real worker under uvicorn's supervisor failing at start-up: the parent raises its message."""
    script = (
        "import sys\n"
        "from changeover.shadow.worker_app import WorkerApp, WorkerFailed, supervise\n"
        f"app = WorkerApp({str(tmp_path / 'gone.yaml')!r}, {pg_url!r}, False, {str(tmp_path / 'failed.txt')!r})\n"
        "try:\n"
        f"    supervise(app, '127.0.0.1', {free_port()}, 'warning', 1)\n"  # one worker: the same supervisor
        "except WorkerFailed as exc:\n"
        "    print('raised:', exc)\n"
        "    sys.exit(exc.exit_code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "raised: a gateway worker (pid " in done.stdout and "gone.yaml" in done.stdout, done.stdout + done.stderr
    assert pg_url not in done.stdout + done.stderr  # the URL (a password in it) is never printed


def test_a_worker_app_that_cannot_start_exits_with_the_startup_failure_code(tmp_path, capsys):
    from uvicorn.config import STARTUP_FAILURE

    from changeover.shadow.worker_app import WorkerApp

    app = WorkerApp(str(tmp_path / "gone.yaml"), "x", True, str(tmp_path / "failed.txt"))
    with pytest.raises(SystemExit) as exited:
        app()
    assert exited.value.code == STARTUP_FAILURE  # uvicorn's supervisor stops instead of restarting the worker
    assert "gone.yaml" in (tmp_path / "failed.txt").read_text()
    assert "x" not in repr(app).split("spec_path")[0] and "db_url" not in repr(app)
