"""The background writer: non-blocking hand-off, drops counted, drained on close, no secrets stored."""

from __future__ import annotations

import time

from sqlalchemy import func, select
from tests.gateway.exchanges import exchange

from changeover.shadow.config import Redaction, Upstream
from changeover.shadow.redact import Redactor
from changeover.shadow.rows import RowMaker
from changeover.shadow.writer import LogWriter
from changeover.shadowlog.answers import load_answers
from changeover.shadowlog.ledger import contamination_subjects
from changeover.shadowlog.tables import shadow_log

UPSTREAMS = {
    "old": Upstream(base_url="http://x/v1", input_per_mtok=5.0, output_per_mtok=15.0),
    "new": Upstream(base_url="http://y/v1"),
}


def rows_in(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(shadow_log)).scalar_one()


def test_writes_in_batches_and_drains_everything_on_close(store):
    writer = LogWriter(store, RowMaker(UPSTREAMS, {"new"}), queue_size=5000, batch_size=50, flush_interval=0.05).start()
    for i in range(1000):  # (that a hand-off never waits on the store: the held-lock test below)
        assert writer.submit(exchange(f"r{i}", "old"))
    writer.close()
    assert rows_in(store) == 1000 and writer.written == 1000 and writer.dropped == 0
    assert writer.batches >= 1000 // 50


def test_a_full_queue_drops_and_counts(store):
    writer = LogWriter(store, RowMaker(UPSTREAMS, {"new"}), queue_size=10)  # not started: nobody drains
    accepted = sum(writer.submit(exchange(f"r{i}", "old")) for i in range(25))
    assert accepted == 10 and writer.dropped == 15
    writer.start().close()
    assert rows_in(store) == 10


def test_rows_are_parsed_costed_redacted_and_hold_no_secrets(store):
    payload = {
        "messages": [{"role": "user", "content": "my card is 4111-1111-1111-1111, help"}],
        "temperature": 0.2,
        "api_key": "sk-live-secret",
        "tools": [{"type": "function"}],
    }
    maker = RowMaker(UPSTREAMS, {"new"}, Redactor([Redaction(pattern=r"\d{4}(-\d{4}){3}", replace="[CARD]")]))
    writer = LogWriter(store, maker).start()
    writer.submit(exchange("r1", "old", payload=payload, text="I'm sorry, but I can't help with that."))
    writer.submit(exchange("r2", "new", "served", subject="alice", stage=1, weight=50))
    writer.submit(exchange("r3", "new", "mirror", error="timeout"))
    writer.close()
    answers = {a.request_id: a for a in load_answers(store, with_request=True)}
    r1 = answers["r1"]
    assert r1.refusal is True and r1.tokens_in == 12 and r1.tokens_out == 8
    assert abs(r1.cost_usd - (12 * 5.0 + 8 * 15.0) / 1e6) < 1e-12
    assert r1.request["messages"][0]["content"] == "my card is [CARD], help"
    assert "api_key" not in r1.request and r1.request["temperature"] == 0.2 and r1.request["tools"]
    assert answers["r3"].error == "timeout" and answers["r3"].refusal is None
    with store.engine.connect() as conn:
        dump = " ".join(str(tuple(r)) for r in conn.execute(select(shadow_log)).all())
    assert "sk-live-secret" not in dump and "4111" not in dump
    touched = contamination_subjects(store, "new")
    assert [(t.subject, t.requests) for t in touched] == [("alice", 1)]  # mirrors are not contamination


def test_a_malformed_answer_is_logged_as_malformed(store):
    writer = LogWriter(store, RowMaker(UPSTREAMS, {"new"})).start()
    ex = exchange("r1", "new", "mirror")
    ex.body = b'{"id": "x", "choices": [{"message": {"content": "trunc'
    writer.submit(ex)
    writer.close()
    (a,) = load_answers(store)
    assert a.malformed and not a.ok


def test_an_outage_holds_the_batch_and_a_close_gives_up_in_time(sqlite_url, monkeypatch):
    """The store locked past its busy timeout: rows are held and retried, not lost; a close while it
    stays locked returns after its timeout and counts what it could not write."""
    import sqlite3

    from changeover.store import open_store

    monkeypatch.setenv("CHANGEOVER_SQLITE_BUSY_MS", "20")
    store = open_store(sqlite_url)
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    writer = LogWriter(store, RowMaker(UPSTREAMS, {"new"}), flush_interval=0.01).start()
    other.execute("BEGIN EXCLUSIVE")
    for i in range(20):
        writer.submit(exchange(f"a{i}", "old"))
    deadline = time.monotonic() + 10
    while writer.store_errors < 3:
        assert time.monotonic() < deadline, "the writer never met the lock"
        time.sleep(0.01)
    other.execute("COMMIT")  # the store is back: the held rows land
    while writer.written < 20:
        assert time.monotonic() < deadline, "the held rows never landed"
        time.sleep(0.01)
    assert writer.lost == 0
    other.execute("BEGIN EXCLUSIVE")
    writer.batch_size = writer.queue.batch_size = 10
    for i in range(35):  # four batches: the first waits out the timeout, the rest are counted at once
        writer.submit(exchange(f"late{i}", "old"))
    writer.close(timeout=0.5)
    assert writer.lost == 35 and writer.written == 20 and writer._thread is None
    assert not writer.submit(exchange("after close", "old")) and writer.dropped == 1  # nobody would write it
    other.execute("COMMIT")
    other.close()
    assert rows_in(store) == 20
    store.dispose()
