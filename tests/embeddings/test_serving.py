"""Versioned search, the serving flag (switch both ways, every change an event with actor and
reason) and cleanup after the stability period."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from changeover.embeddings.adapter import save_adapter, set_active
from changeover.embeddings.errors import CleanupRefusedError, VersionMismatchError
from changeover.embeddings.index import NumpyIndex
from changeover.embeddings.linear_maps import fit_procrustes
from changeover.embeddings.search import QueryVectors, Retriever
from changeover.embeddings.serving import FLAG, cleanup, init_serving, serving_index, switch
from changeover.store.events import list_events, now
from changeover.store.flags import get_flag


@pytest.fixture
def dual(store, embedded) -> NumpyIndex:
    index = NumpyIndex(store)
    with store.engine.begin() as conn:
        index.add(conn, embedded.old_key, embedded.ids, embedded.old_docs)
        index.add(conn, embedded.new_key, embedded.ids, embedded.new_docs)
    return index


def test_mismatched_query_version_is_refused_unless_an_adapter_bridges(dual, embedded):
    retriever = Retriever(dual, ttl=0)
    with pytest.raises(VersionMismatchError, match="no index serves yet"):
        retriever.search(QueryVectors(embedded.old_queries, embedded.old_key))
    init_serving(dual.store, embedded.old_key, "ops")
    hits = retriever.search(QueryVectors(embedded.old_queries[:3], embedded.old_key), k=5)
    assert hits.index_version == embedded.old_key and hits.adapter_id is None and len(hits.ids[0]) == 5
    new_q = QueryVectors(embedded.new_queries[:3], embedded.new_key)
    with pytest.raises(VersionMismatchError) as err:
        retriever.search(new_q)
    assert embedded.new_key in str(err.value) and embedded.old_key in str(err.value)
    assert "fit-adapter" in str(err.value)
    adapter_id = save_adapter(
        dual.store,
        embedded.new_key,
        embedded.old_key,
        fit_procrustes(embedded.new_docs, embedded.old_docs),
        {},
        "ops",
        "bridge",
    )
    hits = retriever.search(new_q, k=5)
    assert hits.adapter_id == adapter_id and hits.index_version == embedded.old_key
    set_active(dual.store, adapter_id, False, "ops", "retire")
    with pytest.raises(VersionMismatchError):
        retriever.search(new_q)


def test_switch_both_ways_is_one_flag_with_events(dual, embedded):
    init_serving(dual.store, embedded.old_key, "ops")
    retriever = Retriever(dual, ttl=0)
    switch(dual, embedded.new_key, "alice", "overlap 0.82, nDCG non-inferior")
    assert serving_index(dual.store) == embedded.new_key
    hits = retriever.search(QueryVectors(embedded.new_queries[:2], embedded.new_key))
    assert hits.index_version == embedded.new_key
    with pytest.raises(VersionMismatchError):  # old queries now refused
        retriever.search(QueryVectors(embedded.old_queries[:2], embedded.old_key))
    switch(dual, embedded.old_key, "bob", "support tickets up")  # instant rollback
    assert serving_index(dual.store) == embedded.old_key
    assert dual.count(embedded.new_key) == len(embedded.ids)  # both indexes kept
    events = list_events(dual.store, subject=FLAG)
    assert [(e.actor, e.reason) for e in events][1:] == [
        ("alice", "overlap 0.82, nDCG non-inferior"),
        ("bob", "support tickets up"),
    ]
    assert events[-1].payload["from_index"] == embedded.new_key and get_flag(dual.store, FLAG).version == 3


def test_cleanup_waits_for_the_stability_period(dual, embedded):
    init_serving(dual.store, embedded.old_key, "ops")
    switch(dual, embedded.new_key, "alice", "go")
    with pytest.raises(CleanupRefusedError, match="is serving"):
        cleanup(dual, embedded.new_key, timedelta(days=7), "alice")
    with pytest.raises(CleanupRefusedError, match="stability period"):
        cleanup(dual, embedded.old_key, timedelta(days=7), "alice")
    assert dual.count(embedded.old_key) == len(embedded.ids)
    n = cleanup(
        dual, embedded.old_key, timedelta(days=7), "alice", "stable for a week", at=now() + timedelta(days=7, minutes=1)
    )
    assert n == len(embedded.ids) and dual.count(embedded.old_key) == 0
    event = list_events(dual.store, kind_prefix="embeddings.cleanup")[-1]
    assert event.actor == "alice" and event.payload["vectors_deleted"] == n


def test_a_reader_sending_text_follows_every_switch(dual, embedded, subset):
    """A reader that gives the Retriever query text never meets a version mismatch: the text is
    embedded by the serving index's model (the 451 VersionMismatchErrors in 23 s of a reader that
    kept encoding with the old model after a switch cannot happen to it)."""
    init_serving(dual.store, embedded.old_key, "ops")
    reader = Retriever(dual.store, ttl=0)  # a Store is enough: it opens the numpy index
    texts = [q.text for q in subset.queries[:4]]
    seen: list[tuple[str, str]] = []
    errors: list[Exception] = []
    stop = threading.Event()
    searched = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                hits = reader.search(texts, k=5)
            except Exception as exc:  # noqa: BLE001 - any error is a failure of this test
                errors.append(exc)
                return
            seen.append((hits.index_version, hits.query_version))
            assert hits.adapter_id is None and len(hits.ids) == len(texts)
            searched.set()

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i, to in enumerate([embedded.new_key, embedded.old_key] * 3):
            searched.clear()
            assert searched.wait(60), "the reader stopped searching"
            switch(dual, to, "ops", f"drill {i}")
            searched.clear()
            assert searched.wait(60), "the reader stopped searching"
    finally:
        stop.set()
        thread.join(60)
    assert errors == []
    assert {v for v, _ in seen} == {embedded.old_key, embedded.new_key}
    assert all(index == query for index, query in seen)  # the query model always matched the index
    # the same reader gets the serving index's own documents for the text
    hits = reader.search(texts[0], k=5)
    direct, _ = dual.search(hits.index_version, embedded.old_queries[:1], 5)
    assert hits.index_version == embedded.old_key and hits.ids == direct
