"""Benchmark the log writer's insert, per row, on SQLite and PostgreSQL: the writer thread's CPU and the server's.

The gateway's writer thread shares the gateway process (and its GIL) with the event loop, so every
microsecond it spends per log row is taken from answering users; on PostgreSQL the server's backend
takes the same cores on a one-machine deployment. This measures, for batches of ``--batch`` rows made
by the gateway's own ``RowMaker`` from exchanges like bench_gateway's traffic (an incumbent answer and
a mirrored candidate answer per request): the thread CPU time per row of making the rows and of
``LogWriter._insert`` (one transaction for both tables), on SQLite (a fresh file), on PostgreSQL
through SQLAlchemy's executemany (``batched=False``, the path before ``shadow.pgbatch``, kept for
row-by-row isolation) and batched (one ``json_to_recordset`` INSERT per table), and the PostgreSQL
backend's CPU per row (``/proc``, a local server; ticks of 10 ms, so many batches are measured).
Medians of ``--repeats`` measurements of ``--batches`` batches each, the paths taking turns.
Run: python benchmarks/bench_log_writer.py [--pg URL] [--batches 60] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import bench_gateway as G  # noqa: E402
import numpy as np  # noqa: E402
from bench_pushdown import _Database as FreshDatabase  # noqa: E402

from changeover.shadow.exchange import Exchange  # noqa: E402
from changeover.shadow.rows import RowMaker  # noqa: E402
from changeover.shadow.writer import LogWriter  # noqa: E402
from changeover.store import Store, open_store  # noqa: E402
from changeover.store.events import now  # noqa: E402

MAKER = RowMaker({}, {"new"})


def answer(text: str) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    return json.dumps({"id": "x", "choices": [choice], "usage": {"prompt_tokens": 14, "completion_tokens": 9}}).encode()


def exchanges(rows: int) -> list[Exchange]:
    """``rows`` exchanges: per request the incumbent's served answer and the candidate's mirrored one."""
    out = []
    for i in range(rows // 2):
        prompt, rid = G.PROMPTS[i % len(G.PROMPTS)], uuid.uuid4().hex
        payload = {"model": "gpt", "messages": [{"role": "user", "content": prompt}], "max_tokens": 32}
        for model, role, text in (
            ("old", "served", G.incumbent_answer(prompt)),
            ("new", "mirror", G.candidate_answer(prompt)),
        ):
            out.append(
                Exchange(
                    request_id=rid,
                    at=now(),
                    model=model,
                    role=role,
                    request_type="default",
                    subject="bench",
                    stage=0,
                    weight=0,
                    stream=False,
                    payload=payload,
                    body=answer(text),
                    status=200,
                    error=None,
                    latency_ms=5.3,
                )  # fmt: skip
            )
    return out


def backend_pid(store: Store) -> int | None:
    if store.dialect != "postgresql":
        return None
    with store.engine.connect() as conn:  # the pool's one connection: the writer's next checkout gets it
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def measure(store: Store, insert: Callable[[list, list], None], args: argparse.Namespace) -> tuple[float, ...]:
    """(making us/row, insert us/row, server us/row) over ``args.batches`` batches."""
    make = write = 0.0
    pid = backend_pid(store)
    server0 = G.proc_stat(pid)[1] if pid else 0.0
    for _ in range(args.batches):
        exs = exchanges(args.batch)
        t0 = time.thread_time()
        made = [MAKER(ex) for ex in exs]
        rows, ledger = [r for r, _ in made], [e for _, e in made if e is not None]
        t1 = time.thread_time()
        insert(rows, ledger)
        make, write = make + t1 - t0, write + time.thread_time() - t1
    server = (G.proc_stat(pid)[1] - server0) if pid else float("nan")
    n = args.batches * args.batch / 1e6
    return make / n, write / n, server / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default=os.environ.get("CHANGEOVER_TEST_PG"), help="PostgreSQL server URL (local)")
    ap.add_argument("--batch", type=int, default=200, help="rows per batch (the gateway's shadow.batch_size)")
    ap.add_argument("--batches", type=int, default=60, help="batches per measurement")
    ap.add_argument("--repeats", type=int, default=7, help="measurements per path (the median is printed)")
    args = ap.parse_args()
    if not args.pg:
        ap.error("a PostgreSQL server is needed: --pg URL or CHANGEOVER_TEST_PG")
    C.header("bench_log_writer " + " ".join(sys.argv[1:]))
    with tempfile.TemporaryDirectory() as tmp, FreshDatabase(args.pg, "writer") as pg:
        lite, post = open_store(f"sqlite:///{tmp}/log.db"), open_store(pg)
        on_lite, on_pg = LogWriter(lite, MAKER), LogWriter(post, MAKER)
        paths = {
            "SQLite": (lite, on_lite._insert),
            "PostgreSQL, executemany (before)": (post, lambda r, e: on_pg._insert(r, e, batched=False)),
            "PostgreSQL, one statement per table": (post, on_pg._insert),
        }
        for store, insert in paths.values():  # warm-up: connections, prepared statements, caches
            measure(store, insert, argparse.Namespace(batches=3, batch=args.batch))
        got: dict[str, list[tuple[float, ...]]] = {name: [] for name in paths}
        for _ in range(args.repeats):
            for name, (store, insert) in paths.items():
                got[name].append(measure(store, insert, args))
        lite.dispose()
        post.dispose()
    print(f"us per log row, batches of {args.batch}, median of {args.repeats} x {args.batches} batches:")
    print(f"{'path':38} {'make row':>9} {'insert':>8} {'server':>8} {'in process':>11} {'total':>7}")
    for name, values in got.items():
        make, write, server = np.median(np.array(values), axis=0)
        total = write + (0.0 if np.isnan(server) else server)
        srv = "-" if np.isnan(server) else f"{server:.1f}"
        print(f"{name:38} {make:9.1f} {write:8.1f} {srv:>8} {make + write:11.1f} {make + total:7.1f}")
    print(f"# done, {C.load_now()}")


if __name__ == "__main__":
    main()
