"""A crash mid-run (SIGKILL of a real `changeover evaluate` process) and a resume: no call made twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from changeover.evaluate import evaluate
from changeover.prompts import read_interactions
from changeover.store import open_store

from .helpers import make_spec, setup_fake, traffic_rows, write_traffic

ITEMS = 60
CONCURRENCY = 4


def cached_calls(db) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM eval_calls").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def settled(count, quiet: float = 1.0, timeout: float = 20.0) -> int:
    """``count()`` once it has not changed for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError("the count never settled")


def test_crash_then_resume_calls_nothing_twice(fake, tmp_path):
    setup_fake(fake)
    for model in ("old-model", "new-model", "judge-model"):
        fake.set(model, latency=0.05)
    spec, spec_path = make_spec(tmp_path, fake.base_url)
    raw = spec_path.read_text().replace("concurrency: 16", f"concurrency: {CONCURRENCY}")
    spec_path.write_text(raw)
    traffic = write_traffic(tmp_path / "traffic.jsonl", traffic_rows(ITEMS))
    db = tmp_path / "c.db"
    cmd = [
        sys.executable,
        "-c",
        "from changeover.cli import main; main()",
        "evaluate",
        "--spec",
        str(spec_path),
        "--prompts",
        str(traffic),
        "--db",
        str(db),
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while cached_calls(db) < 40:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    persisted = cached_calls(db)
    total = 4 * ITEMS  # two models + one LLM judge call per response
    assert 40 <= persisted < total, "the crash must land mid-run"
    first_run = settled(lambda: sum(fake.calls.values()))  # requests already on the wire still arrive
    assert not (tmp_path / "out" / "records.jsonl").exists()

    from changeover.config import load_spec

    with open_store(f"sqlite:///{db}") as store:
        result = evaluate(load_spec(spec_path), read_interactions(traffic), store=store)
    second_run = sum(fake.calls.values()) - first_run
    assert second_run == total - persisted  # everything stored was reused, nothing else repeated
    in_flight = first_run - persisted  # calls that were under way when the process died
    assert 0 <= in_flight <= 3 * CONCURRENCY  # a call holds its slot until stored: at most 4 lost per model
    assert sum(n - 1 for n in fake.duplicates().values()) <= in_flight
    assert len(result.records) == 2 * ITEMS and all(r.error is None for r in result.records)
    assert cached_calls(db) == total
