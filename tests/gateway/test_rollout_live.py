"""Rollout through a running gateway: admin API behind a token, sticky stages, automatic rollback."""

from __future__ import annotations

import time

import httpx
import pytest
from tests.gateway.helpers import chat
from tests.gateway.test_gateway import wait_for

from changeover.config import load_spec
from changeover.rollout import state as rs
from changeover.rollout.routing import bucket
from changeover.shadow.config import load_settings
from changeover.shadowlog.ledger import contamination_subjects
from changeover.store.events import list_events

ENDPOINTS = [
    ("GET", "/admin/status"),
    ("POST", "/admin/advance"),
    ("POST", "/admin/pause"),
    ("POST", "/admin/resume"),
    ("POST", "/admin/rollback"),
]


def served_by(client: httpx.Client, user: str) -> str:
    r = client.post("/v1/chat/completions", json=chat(), headers={"x-changeover-user": user})
    assert r.status_code == 200
    return r.headers["x-changeover-model"]


def test_no_admin_call_works_without_the_token(make_spec, serve, monkeypatch, gw_store):
    monkeypatch.delenv("CHANGEOVER_ADMIN_TOKEN", raising=False)
    gw = serve(make_spec())
    for method, path in ENDPOINTS:  # no token configured: the admin API is off
        assert httpx.request(method, gw.url + path, json={"reason": "x"}).status_code == 403
    monkeypatch.setenv("CHANGEOVER_ADMIN_TOKEN", "s3cret-token")
    for method, path in ENDPOINTS:
        for headers in (
            {},
            {"authorization": "Bearer wrong"},
            {"x-changeover-admin-token": "s3cret"},
            {"authorization": "s3cret-token"},
        ):
            r = httpx.request(method, gw.url + path, json={"reason": "x"}, headers=headers)
            assert r.status_code == 401, (method, path, headers)
    assert [e.kind for e in list_events(gw_store, kind_prefix="rollout.")] == ["rollout.start"]
    assert rs.read_state(gw_store, load_settings(load_spec(make_spec())).rollout, "new").stage == 0


def test_admin_advance_takes_effect_without_restart_and_users_stay_put(make_spec, serve, admin_token, gw_store):
    gw = serve(make_spec())
    auth = {"authorization": f"Bearer {admin_token}"}
    users = [f"user-{i}" for i in range(40)]
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        assert {served_by(client, u) for u in users} == {"old"}
        r = client.post("/admin/advance", json={"reason": "offline GO", "actor": "ana"}, headers=auth)
        assert r.status_code == 200 and r.json()["rollout"]["weight"] == 50
        on_candidate = {u for u in users if bucket("changeover.rollout", u) < 50}
        assert 0 < len(on_candidate) < len(users)
        for _ in range(3):  # sticky: every user keeps their model, request after request
            assert {u for u in users if served_by(client, u) == "new"} == on_candidate
        assert client.post("/admin/rollback", json={}, headers=auth).status_code == 409  # a reason is required
        r = client.post("/admin/rollback", json={"reason": "tone complaints"}, headers=auth)
        assert r.json()["rollout"]["status"] == "rolled_back"
        assert {served_by(client, u) for u in users} == {"old"}
        status = client.get("/admin/status", headers=auth).json()
    assert status["rollout"]["weight"] == 0 and status["contaminated_subjects"] == len(on_candidate)
    gw.stop()
    assert {t.subject for t in contamination_subjects(gw_store, "new")} == on_candidate
    kinds = [(e.kind, e.actor, e.reason) for e in list_events(gw_store, kind_prefix="rollout.")]
    assert kinds[1:] == [
        ("rollout.advance", "admin-api:ana", "offline GO"),
        ("rollout.rollback", "admin-api:operator", "tone complaints"),
    ]


@pytest.mark.slow
def test_a_trigger_breach_rolls_back_within_the_window(make_spec, serve, fake, gw_store):
    fake.set("new", fail_rate=1.0, fail_status=500)
    spec = make_spec(
        rollout={
            "stages": [{"weight": 0}, {"weight": 50, "min_duration": "1h"}, {"weight": 100}],
            "triggers": [{"metric": "error_rate", "above_baseline": 0.01, "min_samples": 5}],
            "window": "60s",
            "interval": 0.2,
        }
    )
    settings = load_settings(load_spec(spec))
    rs.advance(
        gw_store,
        settings.rollout,
        rs.ensure_started(gw_store, settings.rollout, "new", "test"),
        "operator:ana",
        "offline GO",
    )
    gw = serve(spec)
    users = [f"user-{i}" for i in range(40)]
    t0 = time.monotonic()
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        # users on the candidate still get answers (the warm incumbent falls back) while the trigger counts
        for u in users:
            assert client.post("/v1/chat/completions", json=chat(), headers={"x-changeover-user": u}).status_code == 200
        rollback = wait_for(lambda: list_events(gw_store, kind_prefix="rollout.rollback"), timeout=10)
        elapsed = time.monotonic() - t0
        time.sleep(0.05)
        assert {served_by(client, u) for u in users} == {"old"}  # the next requests go to the incumbent
    assert elapsed < 60  # within the window
    (event,) = rollback
    assert event.actor == "controller" and "error_rate" in event.reason
    analysis = list_events(gw_store, kind_prefix="rollout.analysis")
    assert analysis and analysis[-1].payload["action"] == "rollback"
    assert analysis[-1].payload["measurements"][0]["phase"] == "failed"
