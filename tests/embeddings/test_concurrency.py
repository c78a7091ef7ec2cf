"""Two re-embedding runs of one version at once: the lease lets one run, the other waits or
refuses in one line (exit 2); every document is embedded once; inserts are idempotent; a run
whose lease expired shows as interrupted and the next run takes over and resumes.

Real runs against the real stores (SQLite and the PostgreSQL of CHANGEOVER_TEST_PG): threads
in one process and separate `changeover` processes, repeated."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from changeover.embeddings.corpus import read_corpus
from changeover.embeddings.errors import JobRunningError, LeaseLostError
from changeover.embeddings.index import NumpyIndex
from changeover.embeddings.lease import Lease, holder
from changeover.embeddings.reembed import job_state, reembed
from changeover.embeddings.schema import jobs, leases
from changeover.providers.embedders import Encoder
from changeover.store import open_store
from changeover.store.events import list_events


class Counting(Encoder):
    """The real model, counting how often each text is embedded (thread-safe)."""

    def __init__(self, inner: Encoder, gate: threading.Event | None = None):
        self.inner, self.name, self.version, self.dim = inner, inner.name, inner.version, inner.dim
        self.count: dict[str, int] = {}
        self._lock = threading.Lock()
        self.gate = gate  # when given, encoding waits for it: the winner holds the lease until the loser tried

    def encode_documents(self, texts):
        if self.gate is not None:
            assert self.gate.wait(120), "the other run never tried"
        with self._lock:
            for t in texts:
                self.count[t] = self.count.get(t, 0) + 1
        return self.inner.encode_documents(texts)

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)


def _race(index, enc, docs, wait: float) -> tuple[list, list]:
    """Start two runs of the same version at the same instant; (results, errors)."""
    start = threading.Barrier(2)
    results, errors = [], []

    def one(name: str) -> None:
        start.wait()
        try:
            results.append(reembed(index, enc, docs, actor=name, batch=2, rate=8.0, wait=wait))
        except JobRunningError as exc:
            errors.append(exc)
            if enc.gate is not None:
                enc.gate.set()

    threads = [threading.Thread(target=one, args=(n,)) for n in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results, errors


@pytest.mark.parametrize("attempt", range(3))
def test_two_runs_at_once_one_refuses_and_each_document_is_embedded_once(store, minilm, small_corpus, attempt):
    docs = read_corpus(small_corpus)[:8]
    index, enc = NumpyIndex(store), Counting(minilm, gate=threading.Event())
    results, errors = _race(index, enc, docs, wait=0.0)
    assert len(results) == 1 and len(errors) == 1, (results, errors)
    assert results[0].embedded == 8 and results[0].complete
    message = str(errors[0])
    assert "already running" in message and "\n" not in message and minilm.key in message
    assert sorted(enc.count.values()) == [1] * 8 and set(enc.count) == {d.text for d in docs}
    assert index.count(minilm.key) == 8
    kinds = [e.kind for e in list_events(store, subject=f"embeddings:{minilm.key}")]
    assert kinds == ["embeddings.reembed.started", "embeddings.reembed.finished"]
    assert holder(store, minilm.key) is None  # released


def test_the_second_run_can_wait_for_the_first_and_then_has_nothing_to_do(store, minilm, small_corpus):
    docs = read_corpus(small_corpus)[:6]
    index, enc = NumpyIndex(store), Counting(minilm)
    results, errors = _race(index, enc, docs, wait=120.0)
    assert not errors and sorted(r.embedded for r in results) == [0, 6]
    assert sorted(enc.count.values()) == [1] * 6


def test_inserts_are_idempotent(store, embedded):
    index = NumpyIndex(store)
    for _ in range(2):  # the same rows twice: kept once, no UniqueViolation
        with store.engine.begin() as conn:
            index.add(conn, embedded.old_key, embedded.ids[:5], embedded.old_docs[:5])
    assert index.count(embedded.old_key) == 5


def test_pgvector_inserts_are_idempotent(pgvector_url, embedded):
    from changeover.embeddings.pgvector import PgvectorIndex

    store = open_store(pgvector_url)
    index = PgvectorIndex(store)
    for _ in range(2):
        with store.engine.begin() as conn:
            index.add(conn, embedded.old_key, embedded.ids[:5], embedded.old_docs[:5])
    assert index.count(embedded.old_key) == 5
    store.dispose()


def test_an_expired_lease_shows_interrupted_and_the_next_run_takes_over(store, minilm, small_corpus):
    docs = read_corpus(small_corpus)[:6]
    index, enc = NumpyIndex(store), Counting(minilm)
    reembed(index, enc, docs, actor="ops", batch=2, limit=2)
    # a run on another machine holds the lease, then stops renewing it (killed, network cut)
    with store.engine.begin() as conn:
        conn.execute(
            insert(leases).values(
                model_version=minilm.key,
                owner="worker-7:4242:abcdef",
                acquired_at=time.time(),
                expires_at=time.time() + 60,
            )
        )
        conn.execute(update(jobs).values(state="running"))
    assert job_state(index, minilm.key)["state"] == "running"
    assert job_state(index, minilm.key)["holder"] == "worker-7:4242:abcdef"
    with pytest.raises(JobRunningError, match="worker-7:4242:abcdef"):
        reembed(index, enc, docs, actor="ops", batch=2)
    with store.engine.begin() as conn:
        conn.execute(update(leases).values(expires_at=time.time() - 1))
    assert job_state(index, minilm.key)["state"] == "interrupted"
    result = reembed(index, enc, docs, actor="ops", batch=2)
    assert (result.already, result.embedded, result.complete) == (2, 4, True)
    assert sorted(enc.count.values()) == [1] * 6  # resume redid nothing


def test_a_run_that_lost_its_lease_writes_nothing(store):
    lease = Lease(store, "m@1", ttl=60).acquire()
    try:
        with store.engine.begin() as conn:
            conn.execute(update(leases).values(owner="someone-else:1:x"))
        with pytest.raises(LeaseLostError, match="lost the lease"):
            with store.engine.begin() as conn:
                lease.check(conn)
    finally:
        lease.release()
    assert holder(store, "m@1").owner == "someone-else:1:x"  # release leaves another run's lease alone


def _cli(url: str, corpus: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from changeover.cli import main; main()", "embeddings", "reembed", "--to", "minilm"]
    cmd += ["--corpus", str(corpus), "--batch", "2", "--rate", "6/s", "--no-progress", "--db", url, "--json", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("attempt", range(2))
def test_two_processes_at_once(store_url, small_corpus, tmp_path, attempt):
    corpus = tmp_path / "eight.jsonl"
    corpus.write_text("\n".join(small_corpus.read_text().splitlines()[:8]) + "\n")
    open_store(store_url).dispose()  # tables exist before the race
    outs = [tmp_path / f"run{i}.json" for i in range(2)]
    procs = [_cli(store_url, corpus, out) for out in outs]
    finished = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    for (_, err), code in zip(finished, codes, strict=True):
        assert "Traceback" not in err and code in (0, 2), err
        if code == 2:  # the loser refuses in one line
            assert err.count("\n") == 1 and "already running" in err, err
    embedded = [json.loads(o.read_text())["embedded"] for o in outs if o.exists()]
    assert 0 in codes and sum(embedded) == 8, (codes, embedded, finished)
    store = open_store(store_url)
    assert NumpyIndex(store).counts() == {json.loads(next(o for o in outs if o.exists()).read_text())["version"]: 8}
    store.dispose()
