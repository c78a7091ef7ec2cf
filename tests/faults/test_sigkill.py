"""SIGKILL of each long job at seeded random points, then a resume that redoes and skips nothing.

The gateway (its log writer mid-batch), ``changeover evaluate`` (mid-run) and
``changeover embeddings reembed`` (mid-job) are real processes killed with
SIGKILL - no shutdown code runs. Kill points are drawn from a seeded RNG, a few
per job here; ``benchmarks/bench_faults.py`` runs many more.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, select
from tests.evaluate.helpers import make_spec as evaluation_spec
from tests.evaluate.helpers import setup_fake, traffic_rows, write_traffic
from tests.evaluate.test_resume import cached_calls, settled
from tests.faults.record import note, seeds
from tests.faults.traffic import Traffic, kill_when, served_rows, wait_until
from tests.gateway.helpers import GatewayProcess

from changeover.config import load_spec
from changeover.embeddings.index import NumpyIndex
from changeover.embeddings.schema import vectors
from changeover.evaluate import evaluate
from changeover.prompts import read_interactions
from changeover.store import open_store
from changeover.store.flags import get_flag

SEEDS = seeds()  # two here; benchmarks/bench_faults.py draws many more
FLUSH = 0.05  # the gateway writer's flush interval in these tests


def integrity(db_path) -> str:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_gateway_killed_mid_write_then_restarted(make_spec, tmp_path, seed):
    rng = random.Random(seed)
    db_path = tmp_path / "gw.db"
    db = f"sqlite:///{db_path}"
    spec = make_spec(shadow={"flush_interval": FLUSH, "batch_size": rng.choice([5, 20, 200])})
    gw = GatewayProcess(spec, db).wait_ready()
    traffic = Traffic(gw.url).start()
    try:
        started = time.monotonic()
        wait_until(lambda: time.monotonic() - started > 1.0 + rng.random(), what="a second of traffic")
        kill_when(gw.proc, traffic.count, traffic.count() + rng.randint(1, 100))
        killed_at = time.monotonic()
    finally:
        traffic.stop()
        gw.kill()
    assert integrity(db_path) == "ok"
    with open_store(db) as store:
        first = served_rows(store)
        flag = get_flag(store, "changeover.rollout")
    assert max(first.values()) == 1  # no batch written twice, none half
    unknown = set(first) - traffic.acknowledged
    assert len(unknown) <= traffic.clients  # at most the requests in flight at the kill
    durable = {r for r, at in traffic.acked_at.items() if at < killed_at - FLUSH - 0.5}
    assert durable <= set(first)  # older than a flush (plus slack): on disk before the kill
    assert durable, "the kill point must leave answers old enough to check"
    # restart on the same store: the old rows stay as they are, new answers are all kept
    again = GatewayProcess(spec, db).wait_ready()
    second = Traffic(again.url).start()
    try:
        second.wait_for(30)
    finally:
        second.stop()
        again.terminate()
        again.kill()
    with open_store(db) as store:
        after = served_rows(store)
        assert get_flag(store, "changeover.rollout").version == flag.version  # the restart rewrote nothing
    assert {r: n for r, n in after.items() if r in first} == first
    assert second.acknowledged <= set(after) and max(after.values()) == 1
    lost = traffic.acknowledged - set(first)
    note(
        "sigkill.gateway",
        seed=seed,
        acknowledged=len(traffic.acknowledged),
        stored=len(first),
        lost_unflushed=len(lost),
        oldest_lost_ms=round(1000 * max((killed_at - traffic.acked_at[r] for r in lost), default=0.0)),
        in_flight_stored=len(unknown),
        restarted_ok=True,
    )


EVAL_ITEMS = 40


@pytest.mark.parametrize("seed", SEEDS)
def test_evaluate_killed_at_a_random_call_then_resumed(fake, tmp_path, seed):
    setup_fake(fake)
    for model in ("old-model", "new-model", "judge-model"):
        fake.set(model, latency=0.02)
    _spec, spec_path = evaluation_spec(tmp_path, fake.base_url)
    spec_path.write_text(spec_path.read_text().replace("concurrency: 16", "concurrency: 4"))
    prompts = write_traffic(tmp_path / "traffic.jsonl", traffic_rows(EVAL_ITEMS))
    db = tmp_path / "c.db"
    total = 4 * EVAL_ITEMS  # incumbent, candidate and an LLM judge call per answer
    cmd = [sys.executable, "-c", "from changeover.cli import main; main()", "evaluate", "--spec", str(spec_path)]
    cmd += ["--prompts", str(prompts), "--db", str(db), "--out", str(tmp_path / "out"), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_when(proc, lambda: cached_calls(db), random.Random(seed).randint(10, total - 20))
    persisted = cached_calls(db)
    assert persisted < total, "the kill must land mid-run"
    first_run = settled(lambda: sum(fake.calls.values()))
    with open_store(f"sqlite:///{db}") as store:
        result = evaluate(load_spec(spec_path), read_interactions(prompts), store=store)
    assert sum(fake.calls.values()) - first_run == total - persisted  # nothing stored redone, nothing skipped
    assert cached_calls(db) == total and len(result.records) == 2 * EVAL_ITEMS
    assert all(r.error is None for r in result.records)
    note("sigkill.evaluate", seed=seed, calls=total, persisted=persisted, in_flight_lost=first_run - persisted)


@pytest.mark.parametrize("seed", SEEDS)
def test_reembed_killed_at_a_random_document_then_resumed(small_corpus, tmp_path, seed):
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    base = [sys.executable, "-c", "from changeover.cli import main; main()", "embeddings", "reembed", "--to", "minilm"]
    base += ["--corpus", str(small_corpus), "--batch", "2", "--no-progress", "--db", url]
    proc = subprocess.Popen([*base, "--rate", "6/s"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    engine = create_engine(url)

    def done() -> int:
        try:
            with engine.connect() as conn:
                return len(conn.execute(select(vectors.c.doc_id)).all())
        except Exception:  # noqa: BLE001 - the job has not created its tables yet
            return 0

    kill_when(proc, done, random.Random(seed).randint(2, 20), timeout=120)
    stored = done()
    engine.dispose()
    assert stored < 24, "the kill must land mid-job"
    out = tmp_path / "resume.json"
    rc = subprocess.run([*base, "--rate", "off", "--json", str(out)], capture_output=True, timeout=300)
    assert rc.returncode == 0, rc.stderr.decode()
    result = json.loads(out.read_text())
    assert result["already"] == stored and result["embedded"] == 24 - stored and result["complete"] is True
    with open_store(url) as store:
        assert len(NumpyIndex(store).ids(result["version"])) == 24
    note("sigkill.reembed", seed=seed, documents=24, stored_at_kill=stored, resumed=result["embedded"])
