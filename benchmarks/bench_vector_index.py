"""Benchmark of the pgvector HNSW index at scale: N synthetic 384-d unit vectors (1M for the
full run) bulk-loaded with binary COPY in batches, then per build (m, ef_construction,
workers, memory): build time, index size, and per ef_search recall@10 against exact search
(numpy over the same matrix) and query p50/p99 through ``PgvectorIndex.search``.

Baselines measured in the same run:
- the exact scan in PostgreSQL (no index) at N: query p50/p99 (the speed-up is against it);
- the default build on the first ``--baseline-n`` vectors (100k): build time and recall;
- row-by-row ``INSERT`` (the re-embed job's path, ``PgvectorIndex.add``) on a sample,
  against the COPY rate.

Vectors: ``--shape latent`` (default) puts them near a random ``--intrinsic``-dimensional
subspace with isotropic noise, as embeddings of real text are (low intrinsic dimension);
``clusters`` draws them around ``--clusters`` centres; ``uniform`` is uniform on the
sphere, the worst case (every point nearly equidistant; no graph finds much there).
Queries are drawn from the same distribution, never from the corpus.

The PostgreSQL backends that build (and their parallel workers) are reniced to
``--renice`` (default 19) by a watcher thread, which also prints build progress
(``pg_stat_progress_create_index``) every ``--progress-every`` seconds.

Usage: python benchmarks/bench_vector_index.py --pg URL [--n 1000000] [--builds 16:64 8:32]
       [--ef-search 10 40 100 200] [--memory 4GB] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text

from changeover.embeddings.config import HnswConfig
from changeover.embeddings.overlap import overlaps
from changeover.embeddings.pgvector import PgvectorIndex, index_name
from changeover.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embeddings import latency  # noqa: E402

K = 10
DIM = 384
APP = "changeover-bench-vector-index"


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Vectors:
    """Seeded synthetic unit vectors; ``draw(m)`` continues the same stream."""

    def __init__(self, shape: str, seed: int, intrinsic: int, noise: float, clusters: int, spread: float):
        self.shape, self.noise, self.spread = shape, noise, spread
        self.rng = np.random.default_rng(seed)
        self.basis = self.rng.standard_normal((intrinsic, DIM)).astype(np.float32) / np.float32(np.sqrt(intrinsic))
        self.centres = self.rng.standard_normal((max(clusters, 1), DIM)).astype(np.float32)
        self.centres /= np.linalg.norm(self.centres, axis=1, keepdims=True)

    def describe(self) -> str:
        if self.shape == "latent":
            return f"near a random {self.basis.shape[0]}-d subspace, noise {self.noise:g}"
        if self.shape == "clusters":
            return f"{len(self.centres)} clusters, spread {self.spread:g}"
        return "uniform on the sphere"

    def draw(self, m: int) -> np.ndarray:
        noise = self.rng.standard_normal((m, DIM)).astype(np.float32) / np.float32(np.sqrt(DIM))
        if self.shape == "latent":
            x = self.rng.standard_normal((m, self.basis.shape[0])).astype(np.float32) @ self.basis
            x += noise * np.float32(self.noise)
        elif self.shape == "clusters":
            x = self.centres[self.rng.integers(0, len(self.centres), m)] + noise * np.float32(self.spread)
        else:
            x = noise
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top_k(matrix: np.ndarray, queries: np.ndarray, k: int, chunk: int = 100_000) -> list[list[str]]:
    """Exact cosine top-k over a large matrix, chunk by chunk (unit vectors: dot product)."""
    best_scores = np.full((len(queries), 0), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(matrix), chunk):
        scores = queries @ matrix[start : start + chunk].T
        ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, ids], axis=1)
        keep = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
        keep = np.take_along_axis(keep, np.argsort(-np.take_along_axis(all_scores, keep, axis=1), axis=1), axis=1)
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best_ids = np.take_along_axis(all_ids, keep, axis=1)
    return [[str(i) for i in row] for row in best_ids.tolist()]


class Watcher(threading.Thread):
    """Renices this benchmark's PostgreSQL backends and their parallel workers, and prints the
    progress of any index build they run."""

    def __init__(self, store, nice: int, every: float):
        super().__init__(daemon=True)
        self.store, self.nice, self.every = store, nice, every
        self.stop = threading.Event()
        self.workers_seen = 0

    def run(self) -> None:
        last = 0.0
        with self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            while not self.stop.wait(1.0):
                pids = conn.execute(
                    text(
                        "SELECT pid, backend_type FROM pg_stat_activity WHERE datname = current_database() "
                        "AND (application_name = :a OR leader_pid IN "
                        "(SELECT pid FROM pg_stat_activity WHERE application_name = :a))"
                    ),
                    {"a": APP},
                ).all()
                self.workers_seen = max(self.workers_seen, sum(1 for p in pids if p.backend_type == "parallel worker"))
                for p in pids:
                    try:
                        if os.getpriority(os.PRIO_PROCESS, p.pid) < self.nice:
                            os.setpriority(os.PRIO_PROCESS, p.pid, self.nice)
                    except OSError:
                        pass
                if time.monotonic() - last < self.every:
                    continue
                row = conn.execute(
                    text(
                        "SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total "
                        "FROM pg_stat_progress_create_index p JOIN pg_stat_activity a USING (pid) "
                        "WHERE a.application_name = :a AND a.datname = current_database()"
                    ),
                    {"a": APP},
                ).first()
                if row is not None:
                    last = time.monotonic()
                    done = f"{row.tuples_done:,} tuples" if row.tuples_done else f"{row.blocks_done:,} blocks"
                    total = f" of {row.tuples_total:,}" if row.tuples_total else ""
                    workers = sum(1 for p in pids if p.backend_type == "parallel worker")
                    say(f"  build: {row.phase}, {done}{total} ({workers} parallel workers)")


def load(index: PgvectorIndex, version: str, matrix: np.ndarray, batch: int, start_at: int = 0) -> float:
    """COPY ``matrix`` into ``version`` in transactions of ``batch`` rows; returns seconds."""
    t0 = time.perf_counter()
    for start in range(0, len(matrix), batch):
        block = matrix[start : start + batch]
        with index.store.engine.begin() as conn:
            index.copy_rows(conn, version, [str(start_at + start + i) for i in range(len(block))], block)
        if (start // batch) % 5 == 4:
            say(f"  loaded {start + len(block):,} of {len(matrix):,}")
    return time.perf_counter() - t0


def vacuum(store) -> None:
    """VACUUM ANALYZE the vector table: no dead rows for the exact scan to read, fresh statistics."""
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE embedding_pgvectors"))


def drop_index(index: PgvectorIndex, version: str) -> None:
    with index.store.engine.begin() as conn:
        conn.execute(text(f'DROP INDEX IF EXISTS "{index_name(version)}"'))


def index_mb(index: PgvectorIndex, version: str) -> float:
    with index.store.engine.connect() as conn:
        size = conn.execute(text("SELECT pg_relation_size(CAST(:n AS regclass))"), {"n": index_name(version)}).scalar()
    return int(size) / 2**20


def build_and_measure(index, version, hnsw, queries, exact, efs, watcher) -> dict:
    index.hnsw = hnsw
    drop_index(index, version)
    watcher.workers_seen = 0
    say(
        f"build m={hnsw.m} ef_construction={hnsw.ef_construction} workers={hnsw.build_workers} "
        f"memory={hnsw.build_memory} on {version}"
    )
    index.finish(version)
    rep = index.last_build
    opts = index.index_options(version)
    assert opts == {"m": str(hnsw.m), "ef_construction": str(hnsw.ef_construction)}, opts
    out = {
        "m": hnsw.m,
        "ef_construction": hnsw.ef_construction,
        "workers": rep.workers,
        "parallel_workers_seen": watcher.workers_seen,
        "memory": hnsw.build_memory,
        "build_s": rep.seconds,
        "fits_in_memory": rep.fits_in_memory,
        "notices": rep.notices,
        "index_mb": index_mb(index, version),
        "ef_search": {},
    }
    say(
        f"  built in {rep.seconds:.1f}s, index {out['index_mb']:,.0f} MB, parallel workers seen "
        f"{watcher.workers_seen}, graph {'fit' if rep.fits_in_memory else 'did NOT fit'} in memory "
        + (f"({'; '.join(rep.notices)})" if rep.notices else "")
    )
    for ef in efs:
        index.hnsw = hnsw.model_copy(update={"ef_search": ef})
        index.search(version, queries[:2], K)  # warm the connection and the index's pages
        hits = [index.search(version, v, K)[0][0] for v in queries]
        t = latency(lambda v: index.search(version, v, K), queries)
        recall = float(overlaps(hits, exact, K).mean())
        out["ef_search"][ef] = {"recall@10": recall, **t}
        say(
            f"  ef_search {ef:>4}: recall@10 vs exact {recall:.3f} | "
            f"p50 {t['median_ms']:.2f} ms, p99 {t['p99_ms']:.2f} ms"
        )
    return out


def parse_build(spec: str, base: HnswConfig) -> HnswConfig:
    """'m:ef_construction[:workers[:memory]]' -> HnswConfig (validated like the spec)."""
    parts = spec.split(":")
    fields = {"m": int(parts[0]), "ef_construction": int(parts[1])}
    if len(parts) > 2:
        fields["build_workers"] = int(parts[2])
    if len(parts) > 3:
        fields["build_memory"] = parts[3]
    return HnswConfig.model_validate(base.model_dump() | fields)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default=os.environ.get("CHANGEOVER_TEST_PG"), help="PostgreSQL URL with pgvector")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--baseline-n", type=int, default=100_000, help="default build on this many first (if < --n)")
    ap.add_argument("--shape", choices=["latent", "clusters", "uniform"], default="latent")
    ap.add_argument("--intrinsic", type=int, default=24)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--spread", type=float, default=1.0)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--scan-queries", type=int, default=10)
    ap.add_argument("--batch", type=int, default=50_000, help="vectors per COPY transaction")
    ap.add_argument("--insert-sample", type=int, default=10_000, help="vectors INSERTed row by row (baseline)")
    ap.add_argument("--builds", nargs="+", default=["16:64"], help="m:ef_construction[:workers[:memory]]")
    ap.add_argument("--ef-search", type=int, nargs="+", default=[10, 40, 100, 200])
    ap.add_argument("--memory", default=None, help="build_memory for every build (default: the spec default)")
    ap.add_argument("--workers", type=int, default=None, help="build_workers (default: the spec default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--renice", type=int, default=19)
    ap.add_argument("--progress-every", type=float, default=30.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not args.pg:
        raise SystemExit("--pg URL (a PostgreSQL with pgvector) or CHANGEOVER_TEST_PG is needed")

    base = HnswConfig()
    base = base.model_copy(
        update={k: v for k, v in {"build_memory": args.memory, "build_workers": args.workers}.items() if v is not None}
    )
    builds = [parse_build(b, base) for b in args.builds]
    sep = "&" if "?" in args.pg else "?"
    store = open_store(f"{args.pg}{sep}application_name={APP}")
    index = PgvectorIndex(store, base)
    watcher = Watcher(store, args.renice, args.progress_every)
    watcher.start()
    gen = Vectors(args.shape, args.seed, args.intrinsic, args.noise, args.clusters, args.spread)
    n, version = args.n, f"bench-vector@n{args.n}-{args.shape}-seed{args.seed}"
    say(
        f"== pgvector {index.pgvector_version()} HNSW: {n:,} unit vectors x {DIM} ({gen.describe()}), "
        f"{args.queries} queries drawn alike, k={K} =="
    )
    out: dict = {"n": n, "dim": DIM, "shape": gen.describe(), "queries": args.queries, "builds": []}
    versions = [version, version + "-baseline", version + "-insert"]
    with store.engine.begin() as conn:
        for v in versions:
            index.drop(conn, v)
    vacuum(store)  # rows an earlier run deleted would slow the exact scan (1.3 s instead of 43 ms at 100k)
    try:
        t0 = time.perf_counter()
        matrix = np.concatenate([gen.draw(min(args.batch, n - s)) for s in range(0, n, args.batch)])
        queries = gen.draw(args.queries)
        say(f"generated {n:,} vectors in {time.perf_counter() - t0:.1f}s")
        copy_s = load(index, version, matrix, args.batch)
        out["copy_s"] = copy_s
        say(f"COPY {n:,} vectors in {copy_s:.1f}s ({n / copy_s:,.0f} vectors/s, batches of {args.batch:,})")
        sample = matrix[: args.insert_sample]
        t0 = time.perf_counter()
        for s in range(0, len(sample), 5_000):
            with store.engine.begin() as conn:
                index.add(
                    conn, versions[2], [str(i) for i in range(s, s + len(sample[s : s + 5_000]))], sample[s : s + 5_000]
                )
        insert_rate = len(sample) / (time.perf_counter() - t0)
        out["insert_rows_per_s"] = insert_rate
        say(
            f"baseline, INSERT (the re-embed path) of {len(sample):,}: {insert_rate:,.0f} vectors/s -> COPY "
            f"{n / copy_s / insert_rate:.1f}x faster"
        )
        with store.engine.begin() as conn:
            index.drop(conn, versions[2])
        vacuum(store)

        t0 = time.perf_counter()
        exact = exact_top_k(matrix, queries, K)
        say(f"exact top-{K} in numpy for {args.queries} queries: {time.perf_counter() - t0:.1f}s")
        scan = latency(lambda v: index.exact_search(version, v, K), queries[: args.scan_queries])
        scan_hits = [index.exact_search(version, v, K)[0][0] for v in queries[:3]]
        assert overlaps(scan_hits, exact[:3], K).mean() > 0.999, "the exact scan disagrees with numpy"
        out["exact_scan"] = scan
        say(
            f"baseline, exact scan in PostgreSQL (no index) over {n:,}, {args.scan_queries} queries: "
            f"p50 {scan['median_ms']:.1f} ms, p99 {scan['p99_ms']:.1f} ms"
        )

        if args.baseline_n < n:
            bn = args.baseline_n
            copy_b = load(index, versions[1], matrix[:bn], args.batch)
            exact_b = exact_top_k(matrix[:bn], queries, K)
            say(f"baseline: the default build on the first {bn:,} vectors (COPY {copy_b:.1f}s)")
            out["baseline"] = {"n": bn} | build_and_measure(
                index, versions[1], base, queries, exact_b, [base.ef_search], watcher
            )
            with store.engine.begin() as conn:
                index.drop(conn, versions[1])

        for hnsw in builds:
            r = build_and_measure(index, version, hnsw, queries, exact, args.ef_search, watcher)
            out["builds"].append(r)
            for ef, t in r["ef_search"].items():
                say(
                    f"  m={hnsw.m} ef_construction={hnsw.ef_construction} ef_search {ef}: "
                    f"{scan['median_ms'] / t['median_ms']:.0f}x faster than the exact scan at p50, "
                    f"recall@10 {t['recall@10']:.3f}"
                )
            if "baseline" in out:
                b = out["baseline"]
                say(
                    f"  build {r['build_s']:.0f}s at {n:,} vs {b['build_s']:.0f}s at {b['n']:,} "
                    f"({r['build_s'] / b['build_s']:.1f}x for {n / b['n']:.0f}x the vectors)"
                )
            if args.json:  # after every build: a late failure keeps the figures so far
                Path(args.json).write_text(json.dumps(out, indent=2, default=float) + "\n")
    finally:
        watcher.stop.set()
        watcher.join()
        with store.engine.begin() as conn:
            for v in versions:
                index.drop(conn, v)
        vacuum(store)
        store.dispose()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
