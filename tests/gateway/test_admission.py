"""Admission control: beyond ``gateway.max_in_flight`` chat requests a fast 503 with Retry-After, counted;
health, metrics and the admin API are never refused; streams count until their last chunk."""

from __future__ import annotations

import threading
import time

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
        with httpx.Client(timeout=30) as client:
            if body.get("stream"):
                with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
                    out.append((r.status_code, b"".join(r.iter_bytes())))
            else:
                r = client.post(url + "/v1/chat/completions", json=body)
                out.append((r.status_code, r.content))

    t = threading.Thread(target=call, daemon=True)
    t.start()
    return t


def test_beyond_the_limit_a_fast_503_with_retry_after_and_the_gateway_stays_watchable(make_spec, serve, fake):
    gw = serve(make_spec(gateway={"max_in_flight": 2, "retry_after": "2s"}))
    assert gauge(gw.url, "changeover_max_in_flight") == 2 and gauge(gw.url, "changeover_in_flight") == 0
    fake.set("old", latency=1.5)  # the incumbent answers slowly: two requests fill the gateway
    before = fake.calls.get("old", 0)
    done: list = []
    slow = [_in_background(gw.url, chat(f"slow {i}"), done) for i in range(2)]
    wait_until(lambda: gauge(gw.url, "changeover_in_flight") == 2, what="two requests in flight")

    t0 = time.monotonic()
    r = post(gw.url, json=chat("one too many"))
    took = time.monotonic() - t0
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert r.json()["error"]["code"] == "overloaded" and "max_in_flight" not in r.json()["error"]["message"]
    assert took < 1.0  # refused at once, not queued behind the slow ones
    assert rejected(gw.url, "overloaded") == 1
    assert httpx.get(gw.url + "/healthz", timeout=10).status_code == 200  # still watchable while full

    for t in slow:
        t.join(30)
    assert sorted(code for code, _ in done) == [200, 200]
    assert fake.calls.get("old", 0) - before == 2  # the refused request never reached an upstream
    wait_until(lambda: gauge(gw.url, "changeover_in_flight") == 0, what="the gateway drained")
    fake.set("old", latency=0.0)
    assert post(gw.url, json=chat("room again")).status_code == 200
    assert rejected(gw.url, "overloaded") == 1


def test_a_stream_counts_until_its_last_chunk(make_spec, serve, fake):
    gw = serve(make_spec(gateway={"max_in_flight": 1}))
    fake.set("old", stream_chunk_delay=0.3)
    done: list = []
    t = _in_background(gw.url, chat("a long answer streamed slowly", stream=True), done)
    wait_until(lambda: gauge(gw.url, "changeover_in_flight") == 1, what="the stream in flight")
    assert post(gw.url, json=chat("while it streams")).status_code == 503
    t.join(30)
    assert done and done[0][0] == 200 and b"[DONE]" in done[0][1]
    wait_until(lambda: gauge(gw.url, "changeover_in_flight") == 0, what="the stream finished")
    assert post(gw.url, json=chat("after it")).status_code == 200


def test_the_limit_must_be_positive(make_spec, gw_store, sqlite_url, capsys):
    bad = make_spec(gateway={"max_in_flight": 0})
    assert run(["serve", "--spec", str(bad), "--db", sqlite_url]) == 2
    assert "max_in_flight" in capsys.readouterr().err
