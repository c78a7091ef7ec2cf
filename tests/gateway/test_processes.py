"""Real gateway processes: two replicas share one flag on PostgreSQL; SIGTERM loses no acknowledged answer."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest
from tests.gateway.helpers import GatewayProcess, chat

from changeover.cli import run
from changeover.rollout.routing import bucket
from changeover.shadowlog.answers import load_answers
from changeover.store import open_store

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def model_for(url: str, user: str) -> str:
    r = httpx.post(url + "/v1/chat/completions", json=chat(), headers={"x-changeover-user": user}, timeout=10)
    assert r.status_code == 200
    return r.headers["x-changeover-model"]


def seconds_until(predicate, timeout: float = 5.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError("not reached")


def test_two_replicas_on_one_postgresql_see_one_flag(make_spec, pg_url, fake, monkeypatch):
    monkeypatch.setenv("CHANGEOVER_ADMIN_TOKEN", "tok-123")
    spec = make_spec()
    replicas = [GatewayProcess(spec, pg_url), GatewayProcess(spec, pg_url)]
    try:
        for r in replicas:
            r.wait_ready()
        user = next(f"user-{i}" for i in range(1000) if bucket("changeover.rollout", f"user-{i}") < 50)
        assert [model_for(r.url, user) for r in replicas] == ["old", "old"]
        assert run(["rollout", "advance", "--spec", str(spec), "--db", pg_url, "--reason", "offline GO"]) == 0
        # both replicas follow the operator's flip within a second, without a restart
        for r in replicas:
            assert seconds_until(lambda r=r: model_for(r.url, user) == "new") < 1.0
        # an admin call on one replica is seen by the other
        resp = httpx.post(
            replicas[0].url + "/admin/rollback", json={"reason": "pager"}, headers={"authorization": "Bearer tok-123"}
        )
        assert resp.status_code == 200
        assert seconds_until(lambda: model_for(replicas[1].url, user) == "old") < 1.0
    finally:
        for r in replicas:
            r.kill()


def test_after_sigterm_every_acknowledged_answer_is_in_the_store(make_spec, pg_url, fake):
    fake.set("old", latency=1.5)
    # the writer would only flush after 30 s: what reaches the store got there by the shutdown drain
    spec = make_spec(shadow={"flush_interval": 30, "batch_size": 10000})
    gw = GatewayProcess(spec, pg_url).wait_ready()
    before = fake.calls["old"]
    try:
        with httpx.Client(timeout=10) as client:

            def one(i: int) -> str | None:
                try:
                    r = client.post(gw.url + "/v1/chat/completions", json=chat(f"q{i}"))
                except httpx.HTTPError:
                    return None
                return r.headers["x-changeover-request-id"] if r.status_code == 200 else None

            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                futures = [pool.submit(one, i) for i in range(16)]
                seconds_until(lambda: fake.calls["old"] >= before + 16, timeout=10)  # all 16 upstream, unanswered
                # uvicorn re-raises the captured SIGTERM after its graceful shutdown
                assert gw.terminate() in (0, -15)
                acknowledged = {f.result() for f in futures} - {None}
    finally:
        gw.kill()
    assert len(acknowledged) == 16  # in-flight requests finish during the graceful shutdown
    store = open_store(pg_url)
    try:
        logged = {a.request_id for a in load_answers(store) if a.role == "served"}
    finally:
        store.dispose()
    assert acknowledged <= logged
