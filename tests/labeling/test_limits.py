"""Bounds on what a client sends the labelling API, over real HTTP: every over-long field is a 400
naming it, deeply nested JSON is a 400 (not a 500), a body over 1 MiB a 413; nothing is stored."""

from __future__ import annotations

import json
import uuid

import pytest

from changeover.labeling.export import label_rows


def _post(c, body: dict):
    return c.post("/api/labels", json=body)


@pytest.fixture
def filled_store(sqlite_url, records):
    """Bounds are checked before the store is touched: SQLite is enough (the API tests run both)."""
    from changeover.store import open_store
    from changeover.store.responses import add_records

    store = open_store(sqlite_url)
    add_records(store, records, source="xstest")
    yield store
    store.dispose()


@pytest.fixture
def live(filled_store, serve):
    return serve(filled_store)


def test_deeply_nested_json_is_a_400(live, filled_store):
    with live.client("alice") as c:
        for depth in (9, 100, 100_000):
            raw = b'{"client_id": "' + b"c" * 12 + b'", "verdicts": ' + b"[" * depth + b"]" * depth + b"}"
            r = c.post("/api/labels", content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, (depth, r.text)
            assert "nests deeper than 8 levels" in r.json()["error"]
    assert list(label_rows(filled_store)) == []


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("client_id", "c" * 101, "100"),
        ("corrects", "c" * 101, "100"),
        ("note", "n" * 2001, "2,000"),
        ("task", "t" * 65, "64"),
        ("item", "i" * 513, "512"),
        ("model", "m" * 257, "256"),
    ],
)
def test_an_over_long_field_is_a_400_naming_it(live, filled_store, field, value, limit):
    with live.client("alice") as c:
        task = c.get("/api/next").json()["task"]
        body = {"client_id": uuid.uuid4().hex, "task": task, "verdicts": {"refusal": 1}}
        if field in ("item", "model"):
            body = {"client_id": uuid.uuid4().hex, "item": "v2-1", "model": "gpt4", "verdicts": {"refusal": 1}}
        if field == "corrects":
            body["status"] = "label"
        body[field] = value
        r = _post(c, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert f"field '{field}'" in error and f"at most {limit} characters" in error
    assert value not in error  # the client's value is not echoed back whole
    assert list(label_rows(filled_store)) == []


def test_echoed_values_are_cut_short(live):
    with live.client("alice") as c:
        task = c.get("/api/next").json()["task"]
        huge = "x" * 100_000
        for body in (
            {"client_id": uuid.uuid4().hex, "task": task, "status": huge},
            {"client_id": uuid.uuid4().hex, "task": task, "verdicts": {huge: 1}},
            {"client_id": uuid.uuid4().hex, "task": task, "verdicts": {"refusal": huge}},
        ):
            r = _post(c, body)
            assert r.status_code in (400, 422) and len(r.text) < 500, r.text[:200]
    with live.client("admin") as c:
        r = c.get("/api/export", params={"format": huge[:50_000]})
    assert r.status_code == 422 and len(r.text) < 500


def test_a_body_over_one_mebibyte_is_a_413(live):
    note = "n" * (1 << 20)
    with live.client("alice") as c:
        r = c.post("/api/labels", content=json.dumps({"note": note}), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
