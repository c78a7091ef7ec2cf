"""`embeddings reembed --engine ray` on a local Ray with 2 CPUs and the real MiniLM model: the same
vectors, job row and events as the local engine (SQLite and PostgreSQL), and a SIGKILLed worker whose
batch Ray runs again, the job completing with every document embedded and counted once; rerunning
the command then embeds nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, func, select
from tests.support.ray_local import kill_worker, local_ray  # noqa: F401

from changeover.embeddings.corpus import read_corpus
from changeover.embeddings.index import NumpyIndex
from changeover.embeddings.reembed import job_state, reembed
from changeover.embeddings.schema import jobs, vectors
from changeover.engines import Engine
from changeover.store import open_store
from changeover.store.events import list_events


def _stored(index: NumpyIndex, key: str) -> dict[str, bytes]:
    ids, matrix = index.load(key)
    return {i: row.tobytes() for i, row in zip(ids, matrix, strict=True)}


def test_ray_stores_the_vectors_the_local_engine_stores(store, tmp_path, minilm, small_corpus, local_ray):  # noqa: F811
    docs = read_corpus(small_corpus)[:16]
    local_index, ray_index = NumpyIndex(open_store(f"sqlite:///{tmp_path / 'local.db'}")), NumpyIndex(store)
    local = reembed(local_index, minilm, docs, actor="alice", batch=4)
    on_ray = reembed(ray_index, minilm, docs, actor="alice", batch=4, engine=Engine("ray"))
    assert (on_ray.embedded, on_ray.already, on_ray.complete) == (local.embedded, local.already, True) == (16, 0, True)
    mine, theirs = _stored(ray_index, minilm.key), _stored(local_index, minilm.key)
    assert set(mine) == {d.id for d in docs} and mine == theirs  # byte for byte
    keep = ("state", "total", "done", "failed", "runs")
    state, local_state = job_state(ray_index, minilm.key), job_state(local_index, minilm.key)
    assert [state[k] for k in keep] == [local_state[k] for k in keep] == ["done", 16, 16, {}, 1]
    kinds = [e.kind for e in list_events(store, subject=f"embeddings:{minilm.key}")]
    assert kinds == ["embeddings.reembed.started", "embeddings.reembed.finished"]
    _, matrix = ray_index.load(minilm.key, [docs[5].id])
    assert np.allclose(matrix, minilm.encode_documents([docs[5].text]), atol=1e-4)


def test_a_killed_worker_is_run_again_and_the_rerun_embeds_nothing(tmp_path: Path, small_corpus: Path, local_ray):  # noqa: F811
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    cmd = [
        sys.executable,
        *("-c", "from changeover.cli import main; main()"),
        *("embeddings", "reembed", "--to", "minilm", "--corpus", str(small_corpus), "--batch", "2"),
        *("--no-progress", "--db", url, "--engine", "ray", "--ray-address", local_ray),
    ]
    first_json = tmp_path / "first.json"
    proc = subprocess.Popen(
        [*cmd, "--rate", "4/s", "--json", str(first_json)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    engine = create_engine(url)
    deadline = time.monotonic() + 120
    stored = 0
    try:
        while stored < 4:  # some batches committed: the job is under way
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the job never got going"
            try:
                with engine.connect() as conn:
                    stored = conn.execute(select(func.count()).select_from(vectors)).scalar_one()
            except Exception:  # noqa: BLE001 - the tables are not created yet
                pass
            time.sleep(0.05)
        kill_worker("reembed_batch")
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    first = json.loads(first_json.read_text())
    assert (first["already"], first["embedded"], first["complete"]) == (0, 24, True), first
    with engine.connect() as conn:
        ids = list(conn.execute(select(vectors.c.doc_id)).scalars())
        job = conn.execute(select(jobs)).one()
    engine.dispose()
    assert sorted(ids) == sorted(d.id for d in read_corpus(small_corpus))  # each once
    assert (job.state, job.done, job.failed) == ("done", 24, 0)  # progress counted each document once
    again_json = tmp_path / "again.json"
    rerun = subprocess.run([*cmd, "--json", str(again_json)], capture_output=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr.decode()
    again = json.loads(again_json.read_text())
    assert (again["already"], again["embedded"], again["complete"]) == (24, 0, True)
    kinds = [e.kind for e in list_events(open_store(url), kind_prefix="embeddings.reembed")]
    assert kinds == [
        "embeddings.reembed.started",
        "embeddings.reembed.finished",
        "embeddings.reembed.resumed",
        "embeddings.reembed.finished",
    ]
