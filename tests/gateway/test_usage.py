"""Tokens and cost of streamed answers, and a contamination ledger of answers the candidate really gave.

Streams go upstream with ``stream_options.include_usage`` (the final usage
chunk is stripped from the relay when the client did not ask for it); an
upstream that gives no usage gets estimated counts, flagged, never zeros.
"""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, inspect
from tests.gateway.exchanges import exchange
from tests.gateway.helpers import chat

from changeover.shadow.report import model_profile
from changeover.shadow.rows import RowMaker
from changeover.shadow.wire import UsageStripper, estimate_tokens
from changeover.shadow.writer import LogWriter
from changeover.shadowlog.answers import Answer, load_answers
from changeover.shadowlog.ledger import contamination_subjects
from changeover.shadowlog.tables import ensure_tables
from changeover.store import open_store
from changeover.store.events import now

REPLY = "one two three four five six seven"


def events(sse: str) -> list[dict]:
    return [json.loads(line[6:]) for line in sse.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]


def stream(gw_url: str, body: dict) -> str:
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", gw_url + "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            return "".join(r.iter_text())


def served(store) -> Answer:
    (answer,) = [a for a in load_answers(store) if a.role == "served"]
    return answer


def test_a_stream_is_counted_from_the_usage_chunk_the_gateway_asked_for(make_spec, serve, fake, gw_store):
    fake.set("old", reply=REPLY)
    gw = serve(make_spec())
    relayed = stream(gw.url, chat("count", stream=True))  # the client did not ask for usage
    (sent,) = [c for c in fake.log if c.model == "old"]
    assert sent.body["stream_options"] == {"include_usage": True}
    got = events(relayed)
    assert all(e["choices"] for e in got), "the usage-only chunk the client did not ask for is not relayed"
    assert "".join(c["delta"].get("content", "") for e in got for c in e["choices"]) == REPLY
    assert relayed.rstrip().endswith("data: [DONE]")
    gw.stop()
    answer = served(gw_store)
    assert (answer.tokens_in, answer.tokens_out, answer.tokens_estimated) == (1, 7, False)  # the fake's counts
    assert answer.cost_usd == pytest.approx((1 * 5.0 + 7 * 15.0) / 1e6)


def test_a_client_asking_for_usage_gets_the_chunk(make_spec, serve, fake, gw_store):
    fake.set("old", reply=REPLY)
    gw = serve(make_spec())
    got = events(stream(gw.url, chat("count", stream=True, stream_options={"include_usage": True})))
    assert got[-1]["choices"] == [] and got[-1]["usage"]["completion_tokens"] == 7
    gw.stop()
    assert served(gw_store).tokens_estimated is False


def test_an_upstream_without_usage_gets_flagged_estimates_not_zeros(make_spec, serve, fake, gw_store):
    fake.set("old", reply=REPLY)
    spec = make_spec(
        gateway={
            "upstreams": {
                "old": {
                    "base_url": fake.base_url,
                    "input_per_mtok": 5.0,
                    "output_per_mtok": 15.0,
                    "stream_usage": False,
                },
                "new": {"base_url": fake.base_url, "input_per_mtok": 0.5, "output_per_mtok": 1.5},
            }
        }
    )
    gw = serve(spec)
    stream(gw.url, chat("count the words", stream=True))
    (sent,) = [c for c in fake.log if c.model == "old"]
    assert "stream_options" not in sent.body
    gw.stop()
    answer = served(gw_store)
    assert answer.tokens_estimated is True
    assert answer.tokens_out == estimate_tokens(REPLY) == 8 and answer.tokens_in == estimate_tokens("count the words")
    assert answer.cost_usd > 0
    profile = model_profile([answer])
    assert profile["tokens_estimated_rate"] == 1.0 and profile["cost_usd_per_1k"] > 0


def test_answers_without_counts_are_left_out_of_the_average_not_zeroed():
    def answer(i: int, tokens: int | None, error: str | None = None) -> Answer:
        return Answer(
            f"r{i}", "old", "served", "default", None, now(), 0, 200, error, 10.0, None,
            tokens, tokens, None if tokens is None else 0.001, False, "x",
        )  # fmt: skip

    xs = [answer(0, 10), answer(1, 10), answer(2, None), answer(3, None, error="timeout")]
    profile = model_profile(xs)
    # 2 counted answers of 10 tokens and a failed call (nothing billed): 20 / 3, not 20 / 4
    assert profile["tokens_out_per_1k"] == pytest.approx(1000 * 20 / 3)
    assert profile["cost_usd_per_1k"] == pytest.approx(1000 * 0.002 / 3)


@pytest.mark.parametrize("cut", [1, 7, 40, 97, 150])
def test_the_usage_chunk_is_stripped_wherever_the_stream_is_cut(cut):
    chunks = [
        'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n',
        'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
        'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n',
        "data: [DONE]\n\n",
    ]
    whole = "".join(chunks).encode()
    strip = UsageStripper()
    out = b"".join(strip.feed(whole[i : i + cut]) for i in range(0, len(whole), cut)) + strip.flush()
    assert out.decode() == chunks[0] + chunks[1] + chunks[3]


def test_the_ledger_holds_only_answers_the_candidate_gave(store):
    writer = LogWriter(store, RowMaker({}, {"new"}), flush_interval=0.01).start()
    writer.submit(exchange("r1", "new", subject="ana"))  # the candidate answered ana
    writer.submit(exchange("r2", "new", subject="bo", error="timeout"))  # it failed: the incumbent answered
    writer.submit(exchange("r2", "old", "fallback", subject="bo"))
    writer.submit(exchange("r3", "new", subject="cy", status=503))
    writer.submit(exchange("r3", "old", "fallback", subject="cy"))
    writer.close()
    assert [(t.subject, t.requests) for t in contamination_subjects(store, "new")] == [("ana", 1)]
    roles = sorted((a.request_id, a.model, a.role) for a in load_answers(store))
    assert ("r2", "old", "fallback") in roles and ("r3", "old", "fallback") in roles


def test_a_shadow_log_from_before_gets_the_new_column(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = open_store(url)
    meta = MetaData()
    Table(  # the shadow log as an older version created it (no tokens_estimated)
        "shadow_log", meta, Column("id", Integer, primary_key=True), Column("request_id", String(64)),
        Column("stream", Boolean),
    )  # fmt: skip
    meta.create_all(old.engine)
    old.dispose()
    store = open_store(url)
    ensure_tables(store)
    assert "tokens_estimated" in {c["name"] for c in inspect(store.engine).get_columns("shadow_log")}
    store.dispose()
