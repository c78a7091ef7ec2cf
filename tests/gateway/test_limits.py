"""Bounds on what a client sends: bodies (413), JSON depth, ids and reasons (400 / exit 2); a bug is a counted 500."""

from __future__ import annotations

import json

import httpx
import pytest
from tests.faults.traffic import wait_until
from tests.gateway.helpers import chat

from changeover.cli import run
from changeover.rollout import state as rs
from changeover.shadow.limits import depth, loads, parse_size
from changeover.shadowlog.answers import load_answers
from changeover.store.events import list_events
from changeover.store.flags import get_flag


def post(url: str, **kwargs) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=10, **kwargs)


def rejected(url: str, reason: str) -> int:
    text = httpx.get(url + "/metrics").text
    line = f'changeover_rejected_total{{reason="{reason}"}} '
    return next((int(float(x.split()[-1])) for x in text.splitlines() if x.startswith(line)), 0)


def test_sizes_parse():
    assert parse_size("1MiB") == 1 << 20 and parse_size("512 KiB") == 512 << 10 and parse_size(2048) == 2048
    assert parse_size("2MB") == 2_000_000
    for bad in ("lots", "-1", 0, True):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_depth_is_measured_without_recursion():
    deep = "[" * 200_000 + "]" * 200_000  # json.loads alone raises RecursionError here (a 500 before)
    with pytest.raises(ValueError, match="deeper than 64"):
        loads(deep)
    assert depth(loads('{"a": [{"b": 1}]}')) == 3


def test_a_body_over_the_limit_is_413_and_never_forwarded_or_stored(make_spec, serve, fake, gw_store):
    gw = serve(make_spec())
    before = sum(fake.calls.values())
    huge = chat("x" * (2 << 20))  # 2 MiB of prompt; the default limit is 1 MiB
    r = post(gw.url, json=huge)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert "gateway.max_request_bytes" in r.json()["error"]["message"]

    def chunks():  # no Content-Length: refused while reading, not after
        for _ in range(40):
            yield b"x" * 65536

    assert post(gw.url, content=chunks(), headers={"content-type": "application/json"}).status_code == 413
    assert post(gw.url, json=chat("small")).status_code == 200
    assert rejected(gw.url, "body_too_large") == 2
    gw.stop()
    assert sum(fake.calls.values()) - before == 2  # only the small request (and its mirror) went upstream
    assert [a.request_id for a in load_answers(gw_store) if a.role == "served"] != []
    assert all(len(json.dumps(a.request or {})) < 10_000 for a in load_answers(gw_store, with_request=True))


def test_the_limit_is_configurable(make_spec, serve):
    gw = serve(make_spec(gateway={"max_request_bytes": "4KiB"}))
    assert post(gw.url, json=chat("y" * 5000)).status_code == 413
    assert post(gw.url, json=chat("y" * 3000)).status_code == 200


def test_deep_json_and_overlong_ids_are_400(make_spec, serve, fake):
    gw = serve(make_spec())
    nested: dict = {"x": 1}
    for _ in range(100):
        nested = {"x": nested}
    r = post(gw.url, json={**chat(), "metadata": nested})
    assert r.status_code == 400 and r.json()["error"]["code"] == "json_too_deep"
    bomb = b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert post(gw.url, content=bomb, headers={"content-type": "application/json"}).status_code == 400
    r = post(gw.url, json=chat(), headers={"x-changeover-user": "u" * 300})
    assert r.status_code == 400 and r.json()["error"]["code"] == "subject"
    r = post(gw.url, json=chat(), headers={"x-changeover-request-type": "t" * 200})
    assert r.status_code == 400 and r.json()["error"]["code"] == "request_type"
    assert rejected(gw.url, "json_too_deep") == 2


def test_a_bug_on_the_request_path_is_a_counted_500_not_a_disconnect(make_spec, serve, caplog):
    gw = serve(make_spec())
    gateway = gw.service.gateway
    real = gateway.typer

    def broken(payload, headers):
        raise ZeroDivisionError("a bug")

    gateway.typer = broken
    r = post(gw.url, json=chat())
    gateway.typer = real
    assert r.status_code == 500 and r.json()["error"]["type"] == "gateway_error"
    assert "a bug" not in r.text  # the client gets no internals; the log has the traceback
    assert any("ZeroDivisionError" in (rec.exc_text or "") for rec in caplog.records)
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'changeover_gateway_errors_total{error="ZeroDivisionError"} 1' in metrics
    assert post(gw.url, json=chat()).status_code == 200  # and the gateway carries on


def test_a_client_leaving_a_stream_is_logged_as_a_disconnect(make_spec, serve, fake, gw_store):
    fake.set("old", reply=" ".join(["word"] * 200), stream_chunk_delay=0.02)
    gw = serve(make_spec())
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", gw.url + "/v1/chat/completions", json=chat(stream=True)) as r:
            next(r.iter_bytes())  # read one chunk, then hang up
    wait_until(lambda: gw.service.metrics.disconnects == 1, 10, "the disconnect to be seen")
    gw.stop()
    (served,) = [a for a in load_answers(gw_store) if a.role == "served"]
    assert served.error == "client_disconnected"
    assert not gw.service.metrics.errors  # a disconnect is not a gateway error


def test_admin_bodies_reasons_and_actors_are_bounded(make_spec, serve, admin_token, gw_store):
    gw = serve(make_spec())
    auth = {"authorization": f"Bearer {admin_token}"}
    r = httpx.post(gw.url + "/admin/advance", json={"reason": "r" * 200_000}, headers=auth)
    assert r.status_code == 413  # over the admin body limit (64 KiB)
    r = httpx.post(gw.url + "/admin/advance", json={"reason": "r" * 3000}, headers=auth)
    assert r.status_code == 400 and "limit is 2,000" in r.json()["error"]
    r = httpx.post(gw.url + "/admin/advance", json={"reason": "ok", "actor": "a" * 500}, headers=auth)
    assert r.status_code == 400
    deep = b'{"reason": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert httpx.post(gw.url + "/admin/advance", content=deep, headers=auth).status_code == 400
    r = httpx.post(gw.url + "/admin/advance", json={"reason": ["not", "a", "string"]}, headers=auth)
    assert r.status_code == 400
    assert get_flag(gw_store, "changeover.rollout").version == 1  # only the start: nothing changed
    assert httpx.post(gw.url + "/admin/advance", json={"reason": "GO"}, headers=auth).status_code == 200


def test_cli_reasons_and_actors_are_bounded(make_spec, sqlite_url, capsys):
    base = ["rollout", "advance", "--spec", str(make_spec()), "--db", sqlite_url]
    assert run([*base, "--reason", "r" * 200_000]) == 2
    err = capsys.readouterr().err
    assert "200,000 characters; the limit is 2,000" in err and "Traceback" not in err
    assert run([*base, "--reason", "fine", "--actor", "a" * 129]) == 2
    assert run([*base, "--reason", "r" * rs.MAX_REASON]) == 0
    from changeover.store import open_store

    with open_store(sqlite_url) as store:
        assert [len(e.reason) for e in list_events(store, kind_prefix="rollout.advance")] == [rs.MAX_REASON]
