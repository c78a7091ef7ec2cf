"""Admission control: beyond ``gateway.max_in_flight`` chat requests a fast 503 with Retry-After, counted;
health, metrics and the admin API are never refused; streams count until their last chunk."""

from __future__ import annotations

import threading

import httpx
from tests.faults.traffic import wait_until
from tests.gateway.helpers import chat
from tests.gateway.test_limits import post, rejected

from changeover.cli import run


def gauge(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return next(float(x.split()[-1]) for x in text.splitlines() if x.startswith(name + " "))


def _in_background(url: str, body: dict, out: list) -> threading.Thread:
    def call() -> None:
        r = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
        out.append((r.status_code, r.content))

    t = threading.Thread(target=call, daemon=True)
    t.start()
    return t


def test_beyond_the_limit_a_fast_503_with_retry_after_and_the_gateway_stays_watchable(make_spec, serve, fake):
    gw = serve(make_spec(gateway={"max_in_flight": 2, "retry_after": "2s"}))
    assert gauge(gw.url, "changeover_max_in_flight") == 2 and gauge(gw.url, "changeover_in_flight") == 0
    gate = threading.Event()
    fake.set("old", gate=gate)  # the incumbent holds its answers: two requests fill the gateway
    before = fake.calls.get("old", 0)
    done: list = []
    held = [_in_background(gw.url, chat(f"held {i}"), done) for i in range(2)]
    try:
        wait_until(lambda: gauge(gw.url, "changeover_in_flight") == 2, what="two requests in flight")
        r = post(gw.url, json=chat("one too many"))
        assert done == []  # refused while the two were still in flight: not queued behind them
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert r.json()["error"]["code"] == "overloaded" and "limit of 2 requests" in r.json()["error"]["message"]
        assert rejected(gw.url, "overloaded") == 1
        assert httpx.get(gw.url + "/healthz", timeout=10).status_code == 200  # still watchable while full
    finally:
        gate.set()
    for t in held:
        t.join(30)
    assert sorted(code for code, _ in done) == [200, 200]
    assert fake.calls.get("old", 0) - before == 2  # the refused request never reached an upstream
    wait_until(lambda: gauge(gw.url, "changeover_in_flight") == 0, what="the gateway drained")
    assert post(gw.url, json=chat("room again")).status_code == 200
    assert rejected(gw.url, "overloaded") == 1


def test_a_stream_counts_until_its_last_chunk(make_spec, serve, fake):
    gw = serve(make_spec(gateway={"max_in_flight": 1}))
    gate = threading.Event()
    fake.set("old", stream_gate=gate)  # the stream's words flow, its last chunk waits for the gate
    first = threading.Event()
    body: list[bytes] = []

    def stream() -> None:
        with httpx.Client(timeout=30) as client:
            payload = chat("a long answer streamed slowly", stream=True)
            with client.stream("POST", gw.url + "/v1/chat/completions", json=payload) as r:
                for piece in r.iter_bytes():
                    body.append(piece)
                    first.set()

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    try:
        assert first.wait(30)  # the answer has started streaming ...
        assert gauge(gw.url, "changeover_in_flight") == 1  # ... and still counts
        assert post(gw.url, json=chat("while it streams")).status_code == 503
    finally:
        gate.set()
    t.join(30)
    assert b"[DONE]" in b"".join(body)
    wait_until(lambda: gauge(gw.url, "changeover_in_flight") == 0, what="the stream finished")
    assert post(gw.url, json=chat("after it")).status_code == 200


def test_the_limit_must_be_positive(make_spec, gw_store, sqlite_url, capsys):
    bad = make_spec(gateway={"max_in_flight": 0})
    assert run(["serve", "--spec", str(bad), "--db", sqlite_url]) == 2
    assert "max_in_flight" in capsys.readouterr().err
