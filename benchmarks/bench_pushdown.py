"""Count tables of a big Parquet file: the Python engine, the pushdown (DuckDB) and the bare GROUP BY.

A simulated migration: N records (N/2 items answered by the incumbent and one candidate), six
segments, a binary signal and a continuous score (two dimensions, 4 quantile bins), 2% failed
calls, 0.8% of responses labelled. Written once to one Parquet file; then, each in a process of
its own (wall time and peak RSS of that process):

- python:   ``read_records`` + ``service.prepare`` (what ``assess --engine python`` does before the fit);
- pushdown: ``assessment.pushdown.from_file`` (what ``assess --engine duckdb`` does before the fit);
- bare:     the same two count tables as one hand-written DuckDB query on the file (pivot by item,
            quantile cut points, two GROUP BYs) -- the floor any engine on this file pays.

Targets (issue 13): pushdown within 5x of bare, peak memory <= 2 GiB and flat in N.

    python benchmarks/bench_pushdown.py                 # N = 10^6 (and N/4 for the memory slope)
    python benchmarks/bench_pushdown.py --records 4000000 --skip-python --no-slope
    python benchmarks/bench_pushdown.py --no-parquet --import-baseline 200000 --postgres 1000000,10000000
    python benchmarks/bench_pushdown.py --no-parquet --import-baseline 200000 --import-copy 1000000

Measured (2026-12-01, 2 cores shared with other jobs, load average 5.3-6.0; DuckDB 1.5.6):

    records     engine     seconds  x bare  peak MiB
    250,000     bare          0.42     1.0       291
                pushdown      1.84     4.4       397
    1,000,000   bare          1.67     1.0       429
                pushdown      6.12     3.7       559
                python       73.08    43.7      2017
    4,000,000   bare          5.97     1.0       982
                pushdown     17.41     2.9      1257

The pushdown is within 5x of the bare GROUP BY at every size and 12x faster than the Python engine
at 10^6; its peak memory then grew with N (the labelled rows read back as records, DuckDB up to 1 GB).
Since the labelled rows are streamed to their verdicts (``pushdown_votes.build_from_records``) and
DuckDB's limit is 512 MB (17:33 UTC, load 1.5-2.5, ``--records 8000000 --skip-python``): 2x10^6 4.84 s
(3.9x bare), 788 MiB; 8x10^6 15.21 s (4.0x bare), 823 MiB -- 1.04x the memory for 4x the records.

PostgreSQL (2026-12-01; benchmarks/README.md, docs/scale.md): count tables from the store (generated in
the server, ``--postgres-generated 1000000,10000000``, ``nice -n 10``, load average 2.5-2.9) at 10^6 4.95 s,
208 MiB, at 10^7 35.2 s, 214 MiB (1.03x the memory for 10x the records; before the labelled items' verdicts
were counted in SQL, at load 9-14: 21.3 s / 233 MiB and 140.7 s / 506 MiB); the Python engine at 10^6
179.2 s (2,574 MiB, load ~10). Import (``--import-baseline 200000 --import-copy 1000000``,
``nice -n 10``, two runs at load average 2.3-2.9): 200,000 records by COPY 0.89-1.58 s (126,884-224,154
records/s; 1.2 CPU s, importer and server) against the row-by-row path 10.6-12.3 s (16,301-18,800/s);
10^6 by COPY 4.16-4.55 s (219,705-240,139/s, 5.6-6.0 CPU s); at load average 7.1-7.5 the same CPU
seconds gave 85,777 and 73,334 records/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: E402  (one thread per process for numpy)
import numpy as np  # noqa: E402

SPEC = """
incumbent: old
candidates: [new]
segment_by: [region]
traffic: {monthly_interactions: 5300000}
dimensions:
  correctness: {signal: correct, margin: 0.02}
  quality: {signal: score, bins: 4, margin: 0.03}
"""

BARE = """
WITH r AS (
  SELECT item, model, "segment.region" AS seg, "signals.correct" AS c, "signals.score" AS s,
         error IS NOT NULL AS f, "labels.correctness" IS NOT NULL OR "labels.quality" IS NOT NULL AS lab
  FROM read_parquet('{path}')),
cuts AS (SELECT quantile_cont(s, [0.25, 0.5, 0.75]) AS q FROM r WHERE NOT f),
p AS (
  SELECT item, max(CASE WHEN model = 'old' THEN seg END) AS seg,
         max(CASE WHEN model = 'old' THEN c END) AS c0, max(CASE WHEN model = 'new' THEN c END) AS c1,
         max(CASE WHEN model = 'old' THEN s END) AS s0, max(CASE WHEN model = 'new' THEN s END) AS s1,
         bool_or(model = 'old' AND f) AS f0, bool_or(model = 'new' AND f) AS f1, bool_or(lab) AS lab
  FROM r GROUP BY item)
SELECT {cols}, lab, count(*) FROM p, cuts GROUP BY ALL
"""
LEVEL = " + ".join(f"CASE WHEN {{s}} >= q[{i}] THEN 1 ELSE 0 END" for i in (1, 2, 3))


def write_file(path: Path, n_records: int, seed: int = 1) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    items = n_records // 2
    writer = None
    chunk = 250_000
    for start in range(0, items, chunk):
        k = min(chunk, items - start)
        ids = np.arange(start, start + k)
        region = np.array(["emea", "na", "apac", "latam", "anz", "mena"])[ids % 6]
        truth = rng.random((2, k)) < np.array([[0.80], [0.82]])
        for m, model in enumerate(("old", "new")):
            correct = np.where(truth[m], rng.random(k) < 0.9, rng.random(k) < 0.2).astype(np.int64)
            score = np.round(np.clip(truth[m] * 0.3 + rng.random(k) * 0.7, 0, 1), 4)
            failed = rng.random(k) < 0.02
            labelled = rng.random(k) < 0.008
            table = pa.table(
                {
                    "item": pa.array([f"i{i:08d}" for i in ids]),
                    "model": pa.array([model] * k),
                    "segment.region": pa.array(region),
                    "signals.correct": pa.array(correct),
                    "signals.score": pa.array(score),
                    "error": pa.array(["timeout" if x else None for x in failed], pa.string()),
                    "labels.correctness": pa.array(
                        [int(t) if x else None for t, x in zip(truth[m], labelled, strict=True)], pa.int64()
                    ),
                    "labels.quality": pa.array([None] * k, pa.int64()),
                }
            )
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    assert writer is not None
    writer.close()


def child(mode: str, path: str, spec_path: str) -> None:
    """One measurement in this process; prints {"seconds": ..., "cells": ...}."""
    from changeover.config import load_spec

    spec = load_spec(spec_path)
    t0 = time.perf_counter()
    if mode == "python":
        from changeover.assessment.service import prepare
        from changeover.records import read_records

        prepared = prepare(spec, read_records(path))
        cells = sum(c.table.cells for c in prepared.comparisons.values())
    elif mode == "pushdown":
        from changeover.assessment import pushdown

        prepared = pushdown.from_file(spec, path).prepared
        cells = sum(c.table.cells for c in prepared.comparisons.values())
    else:
        import duckdb

        con = duckdb.connect()
        con.execute("SET memory_limit = '1GB'")
        cells = 0
        for cols in (
            "seg, c0, c1, f0, f1",
            f"seg, {LEVEL.format(s='s0')}, {LEVEL.format(s='s1')}, f0, f1",
        ):
            cells += len(con.execute(BARE.format(path=path, cols=cols)).fetchall())
    print(json.dumps({"seconds": time.perf_counter() - t0, "cells": cells}))


def pg_child(mode: str, url: str, arg: str) -> None:
    """One PostgreSQL measurement in this process: the pushdown or load_records + prepare (``arg``: the spec),
    or an import of the records file ``arg`` by COPY (``import_file``) or by the row-by-row path it replaced,
    with the CPU seconds of this process and of its server backends (from /proc: a server on this machine)."""
    from changeover.store import open_store

    t0 = time.perf_counter()
    with open_store(url) as store:
        if mode.startswith("pg-import"):
            from sqlalchemy import event

            from changeover.records import read_records
            from changeover.store.responses import add_records, import_file

            backends: list[int] = []
            store.engine.dispose()  # the import's connections are new ones: their backends' CPU is the import's
            event.listen(store.engine, "connect", lambda dbapi, _: backends.append(dbapi.info.backend_pid))
            t0, cpu0 = time.perf_counter(), time.process_time()
            if mode == "pg-import-copy":
                got = import_file(store, arg)
                rows, added = got.rows, got.added
            else:  # before COPY: every row a Record, then executemany of SQLAlchemy inserts
                rows, added = add_records(store, read_records(arg), arg)
            seconds, client = time.perf_counter() - t0, time.process_time() - cpu0
            server = sum(_process_cpu(pid) for pid in backends)
            print(json.dumps({"seconds": seconds, "cells": added, "rows": rows, "client": client, "server": server}))
            return
        from changeover.config import load_spec

        spec = load_spec(arg)
        if mode == "pg-pushdown":
            from changeover.assessment import pushdown

            prepared = pushdown.from_store(spec, store).prepared
        else:
            from changeover.assessment.service import prepare
            from changeover.store.responses import load_records_counted

            prepared = prepare(spec, load_records_counted(store, spec.models)[0])
    cells = sum(c.table.cells for c in prepared.comparisons.values())
    print(json.dumps({"seconds": time.perf_counter() - t0, "cells": cells}))


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process on this machine has used; NaN when /proc does not show it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Database:
    """A fresh PostgreSQL database on the server of ``base``, dropped on exit."""

    def __init__(self, base: str, tag: str) -> None:
        import uuid

        from sqlalchemy import create_engine, text

        self.text = text
        self.name = f"bench_pushdown_{tag}_{uuid.uuid4().hex[:6]}"
        self.admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = base.rsplit("/", 1)[0] + "/" + self.name

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc: object) -> None:
        with self.admin.connect() as conn:
            conn.execute(self.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def postgres(
    base: str, import_n: int, sizes: list[int], tmp: Path, spec_path: Path, copy_sizes: tuple[int, ...] = ()
) -> None:
    """`changeover import` into PostgreSQL, COPY against the row-by-row path, on ``import_n`` records, and by
    COPY alone on each of ``copy_sizes``; then, for each size, the records imported (COPY) and the count
    tables computed from the store."""
    runs = ([(import_n, "pg-import-rows", "row by row (before, baseline)")] if import_n else []) + [
        (n, "pg-import-copy", "COPY (import_file)") for n in ([import_n] if import_n else []) + list(copy_sizes)
    ]
    if runs:
        print("\nPostgreSQL import (Parquet), each into a fresh database; CPU s: the importing process, its backends")
        print(f"{'records':>10} {'path':<30} {'seconds':>8} {'records/s':>10} {'CPU s':>6} {'server':>6} {'MiB':>5}")
        rates: dict[tuple[int, str], float] = {}
        for n, mode, label in runs:
            path = tmp / f"pg-import-{n}.parquet"
            if not path.exists():
                write_file(path, n, seed=3)
            with _Database(base, "import") as url:
                sec, mib, _ = measure(mode, url, path)
            rates[n, mode] = n / sec
            print(
                f"{n:>10,} {label:<30} {sec:8.2f} {n / sec:10,.0f} {LAST['client']:6.2f} {LAST['server']:6.2f}"
                f" {mib:5.0f}   {C.load_now()}"
            )
            sys.stdout.flush()
        for (n, mode), rate in rates.items():
            if mode == "pg-import-copy":
                base_rate = rates.get((import_n, "pg-import-rows"))
                print(
                    f"COPY at {n:,}: {rate:,.0f} records/s ({'>=' if rate >= 100_000 else 'under'} the 100,000/s goal)"
                    + (f", {rate / base_rate:.1f}x the row-by-row path's rate at {import_n:,}" if base_rate else "")
                )
        sys.stdout.flush()
    peaks = []
    for n in sizes:
        path = tmp / f"pg-{n}.parquet"
        write_file(path, n, seed=2)
        with _Database(base, str(n)) as url:
            sec, mib, _ = measure("pg-import-copy", url, path)
            path.unlink()
            rate = f"{n / sec:,.0f} records/s"
            print(f"\nPostgreSQL, {n:,} records: imported by COPY in {sec:.1f} s ({rate}), {C.load_now()}")
            modes = ["pg-pushdown"] + (["pg-python"] if n <= 1_000_000 else [])
            results = {m: measure(m, url, spec_path) for m in modes}
        print(f"{'engine':<12} {'seconds':>8} {'peak MiB':>9} {'cells':>6}")
        for m, (sec, mib, cells) in results.items():
            print(f"{m:<12} {sec:8.2f} {mib:9.0f} {cells:6d}")
        push = results["pg-pushdown"]
        peaks.append((n, push[1]))
        note = (
            f"; {(results['pg-python'][0] / push[0]):.1f}x faster than the Python engine"
            if "pg-python" in results
            else ""
        )
        print(f"count tables from PostgreSQL in {push[0]:.1f} s{note}{_against_target(n, push[0])}; {C.load_now()}")
        sys.stdout.flush()
    _memory_slope(peaks)


GENERATE = """
SELECT setseed(0.2);
INSERT INTO responses (item, model, segment, signals, labels, payload, fingerprint, source, imported_at)
SELECT 'i' || lpad(i::text, 8, '0'), m.name,
  jsonb_build_object('region', (ARRAY['emea', 'na', 'apac', 'latam', 'anz', 'mena'])[i % 6 + 1]),
  jsonb_build_object('correct', CASE WHEN m.t THEN (random() < 0.9)::int ELSE (random() < 0.2)::int END,
                     'score', round(least(1.0, m.t::int * 0.3 + random() * 0.7)::numeric, 4)),
  CASE WHEN random() < 0.008 THEN jsonb_build_object('correctness', jsonb_build_array(m.t::int)) ELSE '{}' END,
  CASE WHEN random() < 0.02 THEN '{"error": "timeout"}'::jsonb ELSE '{}'::jsonb END,
  md5(i::text || m.name) || md5(m.name || i::text), 'generated', now()
FROM generate_series(0, {items} - 1) AS i
CROSS JOIN LATERAL (SELECT v.name, random() < v.p + 0 * i AS t
                    FROM (VALUES ('old', 0.80), ('new', 0.82)) AS v(name, p)) AS m
"""


def generated(base: str, sizes: list[int], spec_path: Path) -> None:
    """The count tables from PostgreSQL on records generated by SQL in the server (the same migration as
    ``write_file``: six regions, a binary signal and a score, 2% failed calls, 0.8% labelled) -- the store
    side of the pushdown at 10^7 without waiting for an import; the indexes are built after the rows."""
    from sqlalchemy import text

    from changeover.store import open_store

    peaks = []
    for n in sizes:
        with _Database(base, f"gen{n}") as url:
            t0 = time.perf_counter()
            with open_store(url) as store, store.engine.begin() as conn:
                conn.execute(text("ALTER TABLE responses DROP CONSTRAINT uq_responses_fingerprint"))
                conn.execute(text("DROP INDEX ix_responses_item_model"))
                for statement in GENERATE.replace("{items}", str(n // 2)).split(";"):
                    conn.execute(text(statement))
                conn.execute(text("ALTER TABLE responses ADD CONSTRAINT uq_responses_fingerprint UNIQUE (fingerprint)"))
                conn.execute(text("CREATE INDEX ix_responses_item_model ON responses (item, model)"))
            with open_store(url) as store, store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("VACUUM ANALYZE responses"))
            print(f"\nPostgreSQL, {n:,} records generated in SQL in {time.perf_counter() - t0:.1f} s, {C.load_now()}")
            sec, mib, cells = measure("pg-pushdown", url, spec_path)
        peaks.append((n, mib))
        print(f"pg-pushdown {sec:8.2f} s {mib:7.0f} MiB peak {cells:5d} cells{_against_target(n, sec)}; {C.load_now()}")
        sys.stdout.flush()
    _memory_slope(peaks)


def _against_target(n: int, seconds: float) -> str:
    """The 10^7-records target (under 2 min from PostgreSQL), said beside a time at that size."""
    return f" ({'under' if seconds < 120 else 'OVER'} the 2 min target for 10^7)" if n >= 10_000_000 else ""


def _memory_slope(peaks: list[tuple[int, float]]) -> None:
    """Peak RSS at the smallest and largest size: flat in N is a ratio near 1 for many times the records."""
    if len(peaks) > 1:
        (n0, m0), (n1, m1) = peaks[0], peaks[-1]
        print(
            f"\npushdown peak RSS {m0:.0f} MiB at {n0:,} records, {m1:.0f} MiB at {n1:,} "
            f"({m1 / m0:.2f}x for {n1 / n0:.0f}x the records)"
        )


def measure(mode: str, path: Path | str, spec_path: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, cells) of one child process."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, str(path), str(spec_path)], stdout=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"{mode} failed (status {status}): {out}")
    got = json.loads(out.strip().splitlines()[-1])
    LAST.clear()
    LAST.update(got)  # everything the child printed (an import's CPU seconds)
    return got["seconds"], usage.ru_maxrss / 1024, got["cells"]


LAST: dict[str, float] = {}  # the last child's whole report (``measure``)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--skip-python", action="store_true", help="leave out the Python engine (slow at 4x10^6)")
    ap.add_argument("--no-slope", action="store_true", help="leave out the N/4 run (memory flat in N)")
    ap.add_argument(
        "--postgres",
        default="",
        metavar="N[,N...]",
        help="also import N records into PostgreSQL (CHANGEOVER_TEST_PG) by COPY and compute the count tables there",
    )
    ap.add_argument(
        "--import-baseline",
        type=int,
        default=0,
        metavar="N",
        help="with --postgres: first import N records by COPY and by the row-by-row path it replaced",
    )
    ap.add_argument(
        "--import-copy",
        default="",
        metavar="N[,N...]",
        help="also import N records into PostgreSQL by COPY alone (no count tables)",
    )
    ap.add_argument("--no-parquet", action="store_true", help="only the PostgreSQL part")
    ap.add_argument(
        "--postgres-generated",
        default="",
        metavar="N[,N...]",
        help="count tables from PostgreSQL on N records generated by SQL in the server (no import)",
    )
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        (pg_child if args.child[0].startswith("pg-") else child)(*args.child)
        return
    C.header(
        "bench_pushdown: count tables "
        + ("in PostgreSQL" if args.no_parquet else f"of {args.records:,} records in one Parquet file")
    )
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "migration.yaml"
        spec_path.write_text(SPEC)
        sizes = [] if args.no_parquet else [args.records] if args.no_slope else [args.records // 4, args.records]
        for n in sizes:
            path = Path(tmp) / f"records-{n}.parquet"
            t0 = time.perf_counter()
            write_file(path, n)
            size = path.stat().st_size / 2**20
            print(f"\n{n:,} records ({size:.0f} MiB Parquet, written in {time.perf_counter() - t0:.1f} s)")
            modes = ["bare", "pushdown"] + ([] if args.skip_python or n != args.records else ["python"])
            results = {m: measure(m, path, spec_path) for m in modes}
            bare = results["bare"][0]
            print(f"{'engine':<10} {'seconds':>8} {'x bare':>7} {'peak MiB':>9} {'cells':>6}")
            for m, (sec, mib, cells) in results.items():
                print(f"{m:<10} {sec:8.2f} {sec / bare:7.1f} {mib:9.0f} {cells:6d}")
            push = results["pushdown"]
            verdict = "within" if push[0] <= 5 * bare else "NOT within"
            print(
                f"pushdown {verdict} 5x of the bare GROUP BY ({push[0] / bare:.1f}x); peak {push[1]:.0f} MiB "
                f"({'<=' if push[1] <= 2048 else '>'} 2 GiB); {C.load_now()}"
            )
            sys.stdout.flush()
        if args.postgres or args.import_baseline or args.import_copy:
            base = os.environ.get("CHANGEOVER_TEST_PG")
            if not base:
                raise SystemExit("--postgres needs CHANGEOVER_TEST_PG (source /tmp/co_env.sh)")
            sizes = [int(x) for x in args.postgres.split(",") if x]
            copies = tuple(int(x) for x in args.import_copy.split(",") if x)
            postgres(base, args.import_baseline, sizes, Path(tmp), spec_path, copies)
        if args.postgres_generated:
            base = os.environ.get("CHANGEOVER_TEST_PG")
            if not base:
                raise SystemExit("--postgres-generated needs CHANGEOVER_TEST_PG (source /tmp/co_env.sh)")
            generated(base, [int(x) for x in args.postgres_generated.split(",")], spec_path)


if __name__ == "__main__":
    main()
