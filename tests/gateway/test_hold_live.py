"""The hold after the cut-over through a running gateway: reverse mirror, delayed-onset rollback, decommission."""

from __future__ import annotations

import json

import httpx
from tests.gateway.helpers import chat
from tests.gateway.test_gateway import wait_for

from changeover.cli import run
from changeover.config import load_spec
from changeover.rollout import state as rs
from changeover.shadow.config import load_settings
from changeover.shadowlog.answers import load_answers
from changeover.shadowlog.ledger import contamination_subjects
from changeover.store.events import list_events

CUT_OVER = [{"weight": 0}, {"weight": 100}]


def hold_spec(make_spec, **rollout):
    return make_spec(
        rollout={"stages": CUT_OVER, "window": "60s", "interval": 0.1, "hold": "1h", "reverse_mirror": 0.5, **rollout}
    )


def advance(spec, store, times: int = 1) -> None:
    cfg = load_settings(load_spec(spec)).rollout
    state = rs.ensure_started(store, cfg, "new", "test")
    for _ in range(times):
        state = rs.advance(store, cfg, state, "operator:ana", "offline GO")


def send(client: httpx.Client, users: list[str], rounds: int = 1) -> list[str]:
    """One request per user per round; the serving model of each answer (every one a 200)."""
    models = []
    for _ in range(rounds):
        for u in users:
            r = client.post("/v1/chat/completions", json=chat(), headers={"x-changeover-user": u})
            assert r.status_code == 200
            models.append(r.headers["x-changeover-model"])
    return models


def settled(gw) -> None:
    """Every mirror offered has been sent (its answer handed to the writer)."""
    mirror = gw.service.gateway.mirror
    wait_for(lambda: all(mirror.sent[m] + mirror.dropped[m] == n for m, n in mirror.offered.items()))


def mirrored_to_incumbent(store) -> list:
    return [a for a in load_answers(store, models=["old"]) if a.role == "mirror"]


def test_reaching_100_starts_the_hold_with_a_reverse_mirror_and_status_shows_it(
    make_spec, serve, fake, gw_store, sqlite_url, tmp_path, capsys
):
    spec = hold_spec(
        make_spec,
        stages=[{"weight": 0}, {"weight": 50, "min_duration": 0, "min_requests": 10}, {"weight": 100}],
        triggers=[{"metric": "error_rate", "above_baseline": 0.05, "min_samples": 5}],
        reverse_mirror=0.3,
    )
    advance(spec, gw_store)  # 50 %: the controller takes it to 100 % by itself
    gw = serve(spec)
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        assert set(send(client, [f"early-{i}" for i in range(40)])) == {"old", "new"}
        (start,) = wait_for(lambda: list_events(gw_store, kind_prefix="rollout.hold_start"), timeout=30)
        wait_for(lambda: gw.service.watcher.state.status == "holding")
        settled(gw)  # early requests sent after the flip to 100 % may be reverse-mirrored too
        before_sent, before_calls = gw.service.gateway.mirror.sent["old"], fake.calls["old"]
        users = [f"late-{i}" for i in range(50)]
        assert set(send(client, users, rounds=4)) == {"new"}  # the candidate serves everyone
        settled(gw)
    sent = gw.service.gateway.mirror.sent["old"]
    every = wait_for(lambda: (found := mirrored_to_incumbent(gw_store)) and len(found) == sent and found)
    late = [a for a in every if a.subject.startswith("late-")]
    n = len(late)
    assert 25 <= n <= 100  # 30 % of 200 requests (binomial sd 6.5)
    assert fake.calls["old"] - before_calls == n == sent - before_sent  # every one a real call to the incumbent
    assert gw.service.gateway.mirror.dropped["old"] == 0
    assert {a.stage for a in every} == {2} and min(a.at for a in every) >= start.at  # only in the hold
    assert start.actor == "controller" and start.payload["reverse_mirror"] == 0.3
    # the ledger keeps recording whom the candidate answered during the hold
    wait_for(lambda: set(users) <= {t.subject for t in contamination_subjects(gw_store, "new")})
    out = tmp_path / "status.json"
    capsys.readouterr()
    assert run(["rollout", "status", "--spec", str(spec), "--db", sqlite_url, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "holding" in printed and "time left" in printed and "trigger readings" in printed
    status = json.loads(out.read_text())
    assert status["rollout"]["status"] == "holding"
    assert status["hold"]["reverse_mirror"] == 0.3 and status["hold"]["mirrored_to_incumbent"] == len(every)
    assert 3000 < status["hold"]["left_s"] <= 3600
    assert status["last_analysis"]["measurements"][0]["trigger"].startswith("error_rate")


def rolls_back_by_itself(gw, gw_store, fake, worsen, metric: str) -> None:
    """Healthy traffic in the hold (the trigger measured clean), then the candidate gets worse: rolled back."""
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        users = [f"user-{i}" for i in range(30)]
        assert set(send(client, users)) == {"new"}

        def clean_reading():
            for e in list_events(gw_store, kind_prefix="rollout.analysis"):
                if any(m["phase"] == "successful" for m in e.payload["measurements"]):
                    return e

        assert wait_for(clean_reading, timeout=20).payload["action"] == "hold"
        worsen()
        send(client, users, rounds=2)  # users still get answers (the incumbent is warm)
        (rollback,) = wait_for(lambda: list_events(gw_store, kind_prefix="rollout.rollback"), timeout=20)
        wait_for(lambda: gw.service.watcher.state.status == "rolled_back")
        assert set(send(client, users)) == {"old"}  # everyone back on the incumbent
    assert rollback.actor == "controller" and metric in rollback.reason
    assert not list_events(gw_store, kind_prefix="rollout.hold_end")
    assert not list_events(gw_store, kind_prefix="rollout.decommission")
    wait_for(lambda: set(users) <= {t.subject for t in contamination_subjects(gw_store, "new")})


def test_answers_turning_worse_mid_hold_roll_back_by_themselves(make_spec, serve, fake, gw_store):
    spec = hold_spec(make_spec, triggers=[{"metric": "semantic_equivalence", "below": 0.8, "min_samples": 5}])
    advance(spec, gw_store)
    gw = serve(spec)
    rolls_back_by_itself(gw, gw_store, fake, lambda: fake.set("new", reply="Lyon, I believe."), "semantic_equivalence")


def test_a_candidate_failing_mid_hold_rolls_back_by_itself(make_spec, serve, fake, gw_store):
    spec = hold_spec(make_spec, triggers=[{"metric": "error_rate", "above_baseline": 0.05, "min_samples": 5}])
    advance(spec, gw_store)
    gw = serve(spec)
    rolls_back_by_itself(gw, gw_store, fake, lambda: fake.set("new", fail_rate=1.0, fail_status=500), "error_rate")


def test_with_no_regression_the_hold_ends_and_the_incumbent_is_decommissioned(
    make_spec, serve, fake, gw_store, sqlite_url, capsys
):
    spec = hold_spec(
        make_spec,
        hold="1s",
        reverse_mirror=1.0,
        triggers=[{"metric": "error_rate", "above_baseline": 0.05, "min_samples": 5}],
    )
    advance(spec, gw_store)
    gw = serve(spec)
    decommission = wait_for(lambda: list_events(gw_store, kind_prefix="rollout.decommission"), timeout=20)
    wait_for(lambda: gw.service.watcher.state.status == "complete")
    kinds = [e.kind for e in list_events(gw_store, kind_prefix="rollout.")]
    assert kinds[-2:] == ["rollout.hold_end", "rollout.decommission"] and decommission[0].actor == "controller"
    calls, offered = fake.calls["old"], gw.service.gateway.mirror.offered["old"]
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        assert set(send(client, [f"user-{i}" for i in range(20)])) == {"new"}
        fake.set("new", fail_rate=1.0, fail_status=500)  # decommissioned: no fallback to the incumbent either
        r = client.post("/v1/chat/completions", json=chat(), headers={"x-changeover-user": "user-0"})
        assert r.status_code == 500 and r.headers["x-changeover-model"] == "new"
    settled(gw)
    assert fake.calls["old"] == calls and gw.service.gateway.mirror.offered["old"] == offered  # mirroring stopped
    capsys.readouterr()
    assert run(["rollout", "status", "--spec", str(spec), "--db", sqlite_url]) == 0
    assert "decommissioned" in capsys.readouterr().out
