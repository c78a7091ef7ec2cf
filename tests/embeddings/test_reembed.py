"""The re-embedding job: resumable without redoing or skipping (even after SIGKILL), paced by
the rate limit, retrying transient failures, failing permanent ones fast and listing the documents
that still fail."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, select

from changeover.cli import run
from changeover.embeddings.corpus import read_corpus
from changeover.embeddings.errors import IndexIncompleteError
from changeover.embeddings.index import NumpyIndex
from changeover.embeddings.reembed import job_state, reembed
from changeover.embeddings.schema import failures, jobs, vectors
from changeover.embeddings.serving import switch
from changeover.providers.embedders import Encoder, TransientEncoderError
from changeover.store import open_store
from changeover.store.events import list_events


class Recording(Encoder):
    """A real encoder that records every text it embeds, and can fail on chosen documents:
    ``poison`` ones always, as a local model does on input it cannot take (permanent);
    ``flaky`` ones once, as an upstream 503 does (transient); everything while ``down``."""

    def __init__(self, inner: Encoder, poison: set[str] = frozenset(), flaky: set[str] = frozenset()):
        self.inner, self.name, self.version, self.dim = inner, inner.name, inner.version, inner.dim
        self.seen: list[str] = []
        self.calls: list[list[str]] = []
        self.poison, self.flaky = set(poison), set(flaky)
        self.down = False

    def encode_documents(self, texts):
        self.calls.append(list(texts))
        if self.down:
            raise TransientEncoderError("upstream 503: service unavailable")
        if any(t in self.flaky for t in texts):
            self.flaky -= set(texts)  # a flaky document fails once only
            raise TransientEncoderError("upstream 503 for this batch")
        if any(t in self.poison for t in texts):
            raise ValueError("input cannot be tokenised")
        self.seen += list(texts)
        return self.inner.encode_documents(texts)

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)


def test_limit_then_resume_embeds_each_document_exactly_once(store, minilm, small_corpus):
    docs = read_corpus(small_corpus)
    index = NumpyIndex(store)
    enc = Recording(minilm)
    first = reembed(index, enc, docs, actor="alice", reason="first half", batch=4, limit=10)
    assert (first.already, first.embedded, first.complete) == (0, 10, False)
    assert job_state(index, minilm.key)["state"] == "incomplete"
    second = reembed(index, enc, docs, actor="alice", batch=4)
    assert (second.already, second.embedded, second.complete) == (10, 14, True)
    assert sorted(enc.seen) == sorted(d.text for d in docs)  # no redo, no skip
    assert index.ids(minilm.key) == {d.id for d in docs}
    assert job_state(index, minilm.key)["state"] == "done"
    kinds = [e.kind for e in list_events(store, subject=f"embeddings:{minilm.key}")]
    assert kinds == [
        "embeddings.reembed.started",
        "embeddings.reembed.stopped",
        "embeddings.reembed.resumed",
        "embeddings.reembed.finished",
    ]
    # vectors stored equal a fresh encode of the same documents
    ids, matrix = index.load(minilm.key, [docs[3].id, docs[17].id])
    text_of = {d.id: d.text for d in docs}
    fresh = minilm.encode_documents([text_of[i] for i in ids])
    assert np.allclose(matrix, fresh, atol=1e-4)


def test_failing_documents_are_retried_then_listed(sqlite_url, minilm, small_corpus):
    docs = read_corpus(small_corpus)
    store = open_store(sqlite_url)
    index = NumpyIndex(store)
    enc = Recording(minilm, poison={docs[5].text}, flaky={docs[9].text})
    result = reembed(index, enc, docs, actor="bob", batch=4, retries=2, backoff=0.0)
    assert set(result.failed) == {docs[5].id} and result.failed[docs[5].id].startswith("permanent: ValueError")
    # the permanent error is not retried: its batch once, then each of the batch's 4 documents alone once
    assert sum(docs[5].text in c for c in enc.calls) == 2
    assert [len(c) for c in enc.calls if docs[4].text in c] == [4, 1]
    # the transient one was retried as a batch and got in with its neighbours, not split
    assert [len(c) for c in enc.calls if docs[9].text in c] == [4, 4]
    assert index.ids(minilm.key) == {d.id for d in docs} - {docs[5].id}  # the flaky one got in
    state = job_state(index, minilm.key)
    assert state["state"] == "incomplete" and set(state["failed"]) == {docs[5].id}
    with pytest.raises(IndexIncompleteError, match="23 of 24 documents, 1 failed"):
        switch(index, minilm.key, "bob")
    enc.poison.clear()  # upstream fixed
    again = reembed(index, enc, docs, actor="bob", batch=4)
    assert again.embedded == 1 and again.complete and job_state(index, minilm.key)["failed"] == {}


def test_a_transient_outage_is_retried_with_backoff_then_listed_not_split(sqlite_url, minilm, small_corpus):
    docs = read_corpus(small_corpus)[:6]
    index = NumpyIndex(open_store(sqlite_url))
    enc = Recording(minilm)
    enc.down = True
    result = reembed(index, enc, docs, actor="bob", batch=3, retries=2, backoff=0.01)
    assert [len(c) for c in enc.calls] == [3, 3, 3, 3, 3, 3]  # 2 batches x (1 + 2 retries), never split
    assert set(result.failed) == {d.id for d in docs} and all(
        e.startswith("transient:") for e in result.failed.values()
    )
    with index.store.engine.connect() as conn:
        attempts = set(conn.execute(select(failures.c.attempts)).scalars())
    assert attempts == {3}
    enc.down = False
    assert reembed(index, enc, docs, actor="bob", batch=3).complete


def test_rate_limit_paces_the_job(sqlite_url, minilm, small_corpus):
    docs = read_corpus(small_corpus)[:8]
    index = NumpyIndex(open_store(sqlite_url))
    t0 = time.perf_counter()
    result = reembed(index, minilm, docs, actor="carol", batch=2, rate=2.0)  # 2 docs/s, bursts of 2
    assert time.perf_counter() - t0 >= (8 - 2) / 2.0 - 0.05
    assert result.complete


def test_sigkill_mid_job_then_resume(tmp_path: Path, small_corpus: Path):
    db = tmp_path / "kill.db"
    url = f"sqlite:///{db}"
    cmd = [
        sys.executable,
        "-c",
        "from changeover.cli import main; main()",
        "embeddings",
        "reembed",
        "--to",
        "minilm",
        "--corpus",
        str(small_corpus),
        "--batch",
        "2",
        "--rate",
        "4/s",
        "--no-progress",
        "--db",
        url,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    engine = create_engine(url)
    deadline = time.time() + 120
    done = 0
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                with engine.connect() as conn:
                    done = len(conn.execute(select(vectors.c.doc_id)).all())
            except Exception:  # noqa: BLE001 - tables not created yet
                continue
            if done >= 6:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    with engine.connect() as conn:
        stored = sorted(conn.execute(select(vectors.c.doc_id)).scalars())
        job = conn.execute(select(jobs)).one()
    assert 6 <= len(stored) < 24
    assert job.state == "running" and job.done == len(stored)  # progress and vectors committed together
    engine.dispose()
    # the dead run's lease names a process of this host that is gone: status says so at once
    st = tmp_path / "status.json"
    assert run(["embeddings", "status", "--db", url, "--json", str(st)]) == 0
    (entry,) = json.loads(st.read_text())["indexes"]
    assert entry["state"] == "interrupted" and entry["vectors"] == len(stored)
    out = tmp_path / "resume.json"
    rc = subprocess.run(
        cmd[:-5] + ["--rate", "off", "--no-progress", "--db", url, "--json", str(out)], capture_output=True, timeout=300
    )
    assert rc.returncode == 0, rc.stderr.decode()
    result = json.loads(out.read_text())
    assert result["already"] == len(stored) and result["embedded"] == 24 - len(stored)
    assert result["complete"] is True
    store = open_store(url)
    assert NumpyIndex(store).ids(result["version"]) == {d.id for d in read_corpus(small_corpus)}
    kinds = [e.kind for e in list_events(store, kind_prefix="embeddings.reembed")]
    assert kinds == ["embeddings.reembed.started", "embeddings.reembed.resumed", "embeddings.reembed.finished"]
