"""Count tables of a records file in an object store (``s3://``) against the same file on local disk.

The records of ``bench_pushdown`` (N records, six segments, a binary signal and a continuous score) as
one Parquet file and one JSONL file, put into moto's S3 server (a separate process on loopback: its
memory is not counted). Each measurement is ``assessment.pushdown.from_file`` in a process of its own
(wall time and peak RSS of that process): the local file, then the ``s3://`` URI (pyarrow.fs, handed to
DuckDB by fsspec). The local file is the baseline, measured in the same run.

Targets (issue 13): the same tables from the URI, and peak memory flat in the file size (at N/4 and N).

    python benchmarks/bench_objectstore.py                    # N = 10^6 (and N/4 for the memory slope)
    python benchmarks/bench_objectstore.py --records 200000   # a quick run

Measured (2026-12-01, 2 cores shared with other jobs, load average 6.9-7.7; DuckDB 1.5.6, pyarrow 26.0.1,
moto 5.2.5; ``--records 4000000``):

       records file        MiB where   seconds  x local  peak MiB
     1,000,000 parquet       7 local      3.87     1.00       550
                               s3://      3.91     1.01       571
     1,000,000 jsonl       123 local      8.35     1.00       729
                               s3://     10.48     1.26       942
     4,000,000 parquet      30 local     16.88     1.00      1211
                               s3://     18.62     1.10      1263
     4,000,000 jsonl       491 local     30.05     1.00      1272
                               s3://     66.42     2.21      1531

The tables from ``s3://`` are the local file's, cell for cell. Parquet from the object store costs what the
local file costs (1.0-1.1x the time, +21-52 MiB); JSONL 1.3-2.2x the time (every byte through moto's Python
server and fsspec) and +79 / +213 / +259 MiB at 31 / 123 / 491 MiB of file (250,000 / 10^6 / 4x10^6
records, the first from the default run): the object store's share of the memory levels off while the file
grows 16x. The rest of the growth with N is the pushdown's own, the same for the local file (DuckDB's temporary
tables, up to its 1 GB memory limit; ``bench_pushdown``). Every peak is under 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: E402  (one thread per process for numpy)
from bench_pushdown import SPEC, write_file  # noqa: E402

BUCKET = "bench"
ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def child(path: str, spec_path: str) -> None:
    """One ``from_file`` in this process; prints seconds, responses counted and a digest of the tables."""
    from changeover.assessment import pushdown
    from changeover.config import load_spec

    spec = load_spec(spec_path)
    t0 = time.perf_counter()
    pushed = pushdown.from_file(spec, path)
    seconds = time.perf_counter() - t0
    cells = {
        f"{c}/{d}": [int(x) for x in comp.table.n.ravel()] + [comp.paired_items]
        for (c, d), comp in pushed.prepared.comparisons.items()
    }
    print(json.dumps({"seconds": seconds, "rows": pushed.rows, "cells": cells}))


def measure(path: str, spec_path: Path) -> tuple[float, float, dict[str, object]]:
    """(seconds, peak RSS in MiB, the child's result) of one child process."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", path, str(spec_path)], stdout=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"{path} failed (status {status}): {out}")
    got = json.loads(out.strip().splitlines()[-1])
    return got["seconds"], usage.ru_maxrss / 1024, got


def moto_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server in a process of its own on a free loopback port; (the process, host:port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp / "moto.log", "wb")  # noqa: SIM115  (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"moto's server exited: {(tmp / 'moto.log').read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("moto's server did not listen within 60 s")


def upload(endpoint: str, local: Path, key: str) -> None:
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True)
    fs.create_dir(BUCKET)
    pafs.copy_files(str(local), f"{BUCKET}/{key}", destination_filesystem=fs)


def to_jsonl(parquet: Path, jsonl: Path) -> None:
    """The Parquet file's records as JSONL (nested objects, as ``changeover evaluate`` writes them)."""
    import duckdb

    duckdb.sql(
        "COPY (SELECT item, model, {'region': \"segment.region\"} AS segment, "
        "{'correct': \"signals.correct\", 'score': \"signals.score\"} AS signals, error, "
        'CASE WHEN "labels.correctness" IS NOT NULL THEN {\'correctness\': "labels.correctness"} END AS labels '
        f"FROM read_parquet('{parquet}')) TO '{jsonl}' (FORMAT json)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--no-jsonl", action="store_true", help="only the Parquet file")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    C.header(f"bench_objectstore: count tables of {args.records:,} records from s3:// against local disk")
    os.environ.update(ENV)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        spec_path = tmp / "migration.yaml"
        spec_path.write_text(SPEC)
        server, endpoint = moto_server(tmp)
        os.environ["AWS_ENDPOINT_URL"] = f"http://{endpoint}"
        peaks: dict[str, list[tuple[int, float]]] = {}
        try:
            print(f"{'records':>10} {'file':<8} {'MiB':>6} {'where':<6} {'seconds':>8} {'x local':>8} {'peak MiB':>9}")
            for n in (args.records // 4, args.records):
                parquet = tmp / f"records-{n}.parquet"
                write_file(parquet, n)
                files = [parquet]
                if not args.no_jsonl:
                    files.append(tmp / f"records-{n}.jsonl")
                    to_jsonl(parquet, files[-1])
                for local in files:
                    kind = local.suffix.lstrip(".")
                    upload(endpoint, local, local.name)
                    size = local.stat().st_size / 2**20
                    base, base_mib, base_got = measure(str(local), spec_path)
                    sec, mib, got = measure(f"s3://{BUCKET}/{local.name}", spec_path)
                    if got["cells"] != base_got["cells"] or got["rows"] != base_got["rows"]:
                        raise SystemExit(f"{kind} at {n:,}: the tables from s3:// differ from the local file's")
                    print(f"{n:>10,} {kind:<8} {size:6.0f} {'local':<6} {base:8.2f} {1.0:8.2f} {base_mib:9.0f}")
                    print(f"{'':>10} {'':<8} {'':>6} {'s3://':<6} {sec:8.2f} {sec / base:8.2f} {mib:9.0f}")
                    peaks.setdefault(kind, []).append((n, mib))
                    local.unlink()
                    sys.stdout.flush()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print("the tables from s3:// are the local file's, cell for cell, at every size")
    for kind, ((n0, m0), (n1, m1)) in peaks.items():
        print(
            f"{kind}: s3:// peak RSS {m0:.0f} MiB at {n0:,}, {m1:.0f} MiB at {n1:,} ({m1 / m0:.2f}x for {n1 / n0:.0f}x)"
        )
    print(C.load_now())


if __name__ == "__main__":
    main()
