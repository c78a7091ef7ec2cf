"""The gateway over real sockets: the incumbent answers, mirrors stay off the request path, streams relay."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
import pytest
from sqlalchemy import text
from tests.gateway.helpers import chat

from changeover.shadowlog.answers import load_answers


def wait_for(predicate, timeout: float = 10.0, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def test_serves_the_incumbent_and_logs_both_answers(make_spec, serve, fake, gw_store):
    fake.set("new", latency=1.5)
    gw = serve(make_spec())
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        for i in range(10):
            r = client.post("/v1/chat/completions", json=chat(f"question {i}"))
            assert r.status_code == 200
            assert r.json()["choices"][0]["message"]["content"] == "Paris is the capital of France."
            assert r.headers["x-changeover-model"] == "old"
            assert r.elapsed.total_seconds() < 0.75  # never waits for the 1.5 s candidate
    mirror = gw.service.gateway.mirror
    wait_for(lambda: mirror.sent["new"] == 10, timeout=30)
    gw.stop()
    answers = load_answers(gw_store, with_request=True)
    served = [a for a in answers if a.role == "served"]
    mirrored = [a for a in answers if a.role == "mirror"]
    assert len(served) == 10 and {a.model for a in served} == {"old"}
    assert len(mirrored) == 10 and {a.text for a in mirrored} == {"The capital of France is Paris."}
    assert {a.request_id for a in served} == {a.request_id for a in mirrored}
    assert served[0].request["messages"][0]["content"].startswith("question")
    assert served[0].tokens_out == 6 and served[0].cost_usd > 0
    assert fake.calls["old"] == 10 and fake.calls["new"] == 10


@pytest.mark.parametrize("failure", ["500", "hang"])
def test_a_failing_or_hanging_candidate_does_not_touch_incumbent_answers(make_spec, serve, fake, failure):
    if failure == "500":
        fake.set("new", fail_rate=1.0, fail_status=500)
    else:
        fake.set("new", hang=True)
    # the candidate's timeout far beyond any answer's time on a loaded machine: waiting on it would show
    gw = serve(make_spec(shadow={"queue_size": 4, "concurrency": 2, "timeout": 30.0}))
    latencies = []
    client = httpx.Client(base_url=gw.url, timeout=10)

    def one(i: int) -> httpx.Response:
        t0 = time.perf_counter()
        r = client.post("/v1/chat/completions", json=chat(f"q{i}"), headers={"x-changeover-user": f"u{i}"})
        latencies.append(time.perf_counter() - t0)
        return r

    with client, concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(60)))
    assert all(r.status_code == 200 for r in responses)
    assert {r.json()["choices"][0]["message"]["content"] for r in responses} == {"Paris is the capital of France."}
    assert max(latencies) < 15.0  # half the candidate's 30 s timeout: nobody waited on it
    mirror = gw.service.gateway.mirror
    if failure == "hang":
        assert mirror.dropped["new"] > 0  # the bounded queue filled up; drops are counted
        metrics = httpx.get(gw.url + "/metrics").text
        assert f'changeover_mirror_dropped_total{{candidate="new"}} {mirror.dropped["new"]}' in metrics
    else:
        wait_for(lambda: mirror.sent["new"] + mirror.dropped["new"] == 60)
        assert mirror.failed["new"] == 0 and fake.failures["new"] == mirror.sent["new"]


def test_streaming_is_relayed_and_logged_whole(make_spec, serve, fake, gw_store):
    fake.set("old", reply="one two three four five", stream_chunk_delay=0.01)
    gw = serve(make_spec())
    body = chat("count", stream=True, stream_options={"include_usage": True})
    with httpx.Client(timeout=10) as client:
        direct = client.post(fake.base_url + "/chat/completions", json={**body, "model": "old"}).text
        with client.stream("POST", gw.url + "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            relayed = "".join(r.iter_text())

    def contents(sse: str) -> list[str]:
        out = []
        for line in sse.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                out += [c["delta"].get("content", "") for c in json.loads(line[6:])["choices"]]
        return out

    assert contents(relayed) == contents(direct) and "".join(contents(relayed)) == "one two three four five"
    assert relayed.rstrip().endswith("data: [DONE]")
    gw.stop()
    (served,) = [a for a in load_answers(gw_store) if a.role == "served"]
    assert served.text == "one two three four five" and served.tokens_out == 5 and served.ttft_ms is not None


@pytest.mark.parametrize("raw", [b"this is not json", b'{"model": "gpt"}', b'{"messages": "x"'])
def test_a_malformed_request_gets_the_upstreams_own_error(make_spec, serve, fake, raw):
    gw = serve(make_spec())
    headers = {"content-type": "application/json"}
    direct = httpx.post(fake.base_url + "/chat/completions", content=raw, headers=headers)
    via = httpx.post(gw.url + "/v1/chat/completions", content=raw, headers=headers)
    assert direct.status_code >= 400
    assert (via.status_code, via.json()) == (direct.status_code, direct.json())


def test_a_candidate_failure_is_answered_by_the_warm_incumbent(make_spec, serve, fake, gw_store):
    fake.set("new", fail_rate=1.0, fail_status=503)
    spec = make_spec(rollout={"stages": [{"weight": 100}], "interval": 3600})
    gw = serve(spec)
    r = httpx.post(gw.url + "/v1/chat/completions", json=chat(), headers={"x-changeover-user": "ana"})
    assert r.status_code == 200 and r.headers["x-changeover-model"] == "old"
    assert r.json()["choices"][0]["message"]["content"] == "Paris is the capital of France."
    gw.stop()
    roles = sorted((a.model, a.role, a.error) for a in load_answers(gw_store))
    assert roles == [("new", "served", "http_503"), ("old", "fallback", None)]


def test_metrics_in_prometheus_format(make_spec, serve, fake):
    gw = serve(make_spec())
    for _ in range(3):
        httpx.post(gw.url + "/v1/chat/completions", json=chat())
    text = httpx.get(gw.url + "/metrics").text
    assert 'changeover_requests_total{model="old",role="served",outcome="200"} 3' in text
    assert 'changeover_latency_ms_bucket{model="old",role="served",le="+Inf"} 3' in text
    assert "# TYPE changeover_latency_ms histogram" in text
    assert 'changeover_rollout_weight{candidate="new"} 0' in text
    assert "changeover_mirror_dropped_total" in text and "changeover_log_dropped_total 0" in text


def test_keys_reach_the_upstreams_but_never_the_store(make_spec, serve, fake, gw_store, monkeypatch):
    fake.set("old", api_key="sk-user-passthrough")  # the client's own key, passed through
    fake.set("new", api_key="sk-gateway-candidate")  # the gateway's key for the candidate
    monkeypatch.setenv("CANDIDATE_KEY", "sk-gateway-candidate")
    gw = serve(
        make_spec(
            gateway={
                "upstreams": {
                    "old": {"base_url": fake.base_url},
                    "new": {"base_url": fake.base_url, "api_key_env": "CANDIDATE_KEY"},
                }
            }
        )
    )
    r = httpx.post(
        gw.url + "/v1/chat/completions", json=chat(), headers={"authorization": "Bearer sk-user-passthrough"}
    )
    assert r.status_code == 200
    mirror = gw.service.gateway.mirror
    wait_for(lambda: mirror.sent["new"] == 1)
    gw.stop()
    assert fake.failures["old"] == 0 and fake.failures["new"] == 0  # both keys were accepted
    with gw_store.engine.connect() as conn:
        dump = " ".join(
            str(tuple(row))
            for table in ("shadow_log", "events", "flags")
            for row in conn.execute(text(f"SELECT * FROM {table}")).all()
        )
    assert "sk-user-passthrough" not in dump and "sk-gateway-candidate" not in dump
    assert "The capital of France is Paris." in dump  # the mirrored answer itself is there
