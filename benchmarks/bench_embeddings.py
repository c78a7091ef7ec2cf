"""Benchmark of the embedding migration on Cranfield (1,398 non-empty abstracts, 225 queries).

Prints, in one run:
1. re-embedding throughput (the job: rate limit off, store writes, progress
   commits) against raw encode throughput of the same model on the same
   documents (target >= 0.9x): interleaved chunk by chunk, and (robust to the
   load of other processes on the two shared cores) the job's wall time
   against the time spent inside the encoder during that same job;
2. top-10 overlap old (all-MiniLM-L6-v2) vs new (multilingual-e5-small), and
   recall@10 / nDCG@10 of both;
3. per adapter form, on held-out queries (never used to fit or choose): overlap
   with the full re-index's top-10 and the share of its recall/nDCG kept
   (target >= 90%);
4. search latency through the adapter vs without (numpy backend; pgvector too
   with --pg URL).

With ``--synthetic --pg URL`` it runs only the vector-index benchmark instead:
N random unit vectors (default 100,000 x 384, ``--n 1000000`` for the full
run; random vectors are the worst case for HNSW) inserted in batches through
the index's own insert path, the HNSW index built with the spec's defaults
(timed), then for each ef_search: recall@10 against exact search (numpy over
the same matrix) and query p50/p99 through ``PgvectorIndex.search``, against
the exact scan's latency measured in the same run.

Usage: python benchmarks/bench_embeddings.py [--docs N] [--raw-docs N] [--pg URL] [--json out.json]
       python benchmarks/bench_embeddings.py --synthetic --pg URL [--n 100000] [--queries 100]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from changeover.embeddings.adapter import save_adapter
from changeover.embeddings.corpus import read_corpus, read_qrels, read_queries
from changeover.embeddings.index import NumpyIndex
from changeover.embeddings.linear_maps import FORMS, heldout_overlap, refit, select
from changeover.embeddings.metrics import judged, quality
from changeover.embeddings.overlap import overlaps
from changeover.embeddings.reembed import reembed
from changeover.embeddings.search import QueryVectors, Retriever
from changeover.embeddings.serving import init_serving
from changeover.providers.embedders import Encoder, get_encoder
from changeover.store import open_store

CRANFIELD = Path(__file__).resolve().parents[2] / "shared" / "data" / "cranfield"
K = 10


class TimedEncoder(Encoder):
    """The same encoder, timing every encode call made through it (to split a job's wall time
    into encoding and everything else: batching, store writes, progress commits, rate limiter)."""

    def __init__(self, inner: Encoder):
        self.inner, self.name, self.version, self.dim = inner, inner.name, inner.version, inner.dim
        self.seconds = 0.0

    def encode_documents(self, texts):
        t0 = time.perf_counter()
        try:
            return self.inner.encode_documents(texts)
        finally:
            self.seconds += time.perf_counter() - t0

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)


def throughput(index, encoder, docs, raw_docs: int, chunk: int = 64) -> dict:
    """Two measures of the job against raw encoding of the same model:
    - interleaved: raw encode and the job on the same documents, chunk by chunk (raw first on even
      chunks, job first on odd ones); on shared cores this is as noisy as the neighbours' load;
    - in-job: the whole re-embed's wall time vs the time spent inside the encoder during it (same
      calls, same moment), i.e. the share of the job that is not encoding. Robust to load."""
    sample = docs[:raw_docs]
    raw_s = job_s = 0.0
    for n, start in enumerate(range(0, len(sample), chunk)):
        part = sample[start : start + chunk]
        steps = ["raw", "job"] if n % 2 == 0 else ["job", "raw"]
        for step in steps:
            t0 = time.perf_counter()
            if step == "raw":
                encoder.encode_documents([d.text for d in part])
                raw_s += time.perf_counter() - t0
            else:
                reembed(index, encoder, sample, actor="bench", batch=chunk, rate=None, limit=len(part))
                job_s += time.perf_counter() - t0
    timed = TimedEncoder(encoder)
    t0 = time.perf_counter()
    rest = reembed(index, timed, docs, actor="bench", batch=chunk, rate=None)  # resumes after the sample
    wall = time.perf_counter() - t0
    raw, job = len(sample) / raw_s, len(sample) / job_s
    return {
        "raw_docs_per_s": raw,
        "job_docs_per_s": job,
        "ratio": job / raw,
        "sample": len(sample),
        "resumed_embedded": rest.embedded,
        "resumed_already": rest.already,
        "full_job_docs_per_s": rest.embedded / wall,
        "in_job_encode_docs_per_s": rest.embedded / timed.seconds,
        "in_job_ratio": timed.seconds / wall,
    }


def latency(fn, queries: np.ndarray, repeat: int = 1) -> dict:
    times = []
    for _ in range(repeat):
        for q in queries:
            t0 = time.perf_counter()
            fn(q)
            times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return {
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def _exact_top_k(matrix: np.ndarray, queries: np.ndarray, k: int, chunk: int = 100_000) -> list[list[int]]:
    """Exact cosine top-k over a large matrix, chunk by chunk (unit vectors: dot product)."""
    best_scores = np.full((len(queries), 0), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(matrix), chunk):
        scores = queries @ matrix[start : start + chunk].T
        ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, ids], axis=1)
        keep = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best_ids = np.take_along_axis(all_ids, keep, axis=1)
    return best_ids.tolist()


def synthetic(args: argparse.Namespace) -> None:
    """The vector-index benchmark: build time, recall@10 vs exact and latency per ef_search."""
    from changeover.embeddings.config import HnswConfig
    from changeover.embeddings.pgvector import PgvectorIndex

    if not args.pg:
        raise SystemExit("--synthetic needs --pg URL (a PostgreSQL with pgvector)")
    rng = np.random.default_rng(args.seed)
    n, dim, q = args.n, 384, args.queries
    hnsw = HnswConfig()
    centres = rng.standard_normal((max(args.clusters, 1), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(m: int) -> np.ndarray:
        """Unit vectors: uniform on the sphere (the worst case), or around ``--clusters`` random
        centres with noise of norm ~``--spread``, as embeddings of documents on that many topics are."""
        x = rng.standard_normal((m, dim)).astype(np.float32)
        if args.clusters:
            x = centres[rng.integers(0, args.clusters, m)] + x * np.float32(args.spread / np.sqrt(dim))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    shape = f"{args.clusters} clusters, spread {args.spread:g}" if args.clusters else "uniform"
    tag = f"c{args.clusters}s{args.spread:g}" if args.clusters else "u"
    version = f"synthetic@n{n}-d{dim}-seed{args.seed}-{tag}"
    store = open_store(args.pg)
    index = PgvectorIndex(store, hnsw)
    reuse = args.reuse and index.count(version) == n and index.has_hnsw(version)
    if not reuse:
        with store.engine.begin() as conn:
            index.drop(conn, version)
    print(f"== vector index: {n:,} unit vectors x {dim} ({shape}), {q} queries drawn alike, pgvector HNSW ==")
    print(f"HNSW m={hnsw.m}, ef_construction={hnsw.ef_construction}, build maintenance_work_mem {hnsw.build_memory}")
    matrix = np.empty((n, dim), np.float32)
    t0 = time.perf_counter()
    for start in range(0, n, args.batch):  # the same seed regenerates the same vectors for --reuse
        block = draw(min(args.batch, n - start))
        matrix[start : start + len(block)] = block
        if not reuse:
            with store.engine.begin() as conn:
                index.add(conn, version, [str(i) for i in range(start, start + len(block))], block)
    insert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if not reuse:
        index.finish(version)
    build_s = time.perf_counter() - t0
    if reuse:
        print("reusing the vectors and HNSW index kept by an earlier --keep run: insert and build not timed")
    else:
        print(
            f"insert {insert_s:.1f}s ({n / insert_s:,.0f} vectors/s, batches of {args.batch:,}); "
            f"HNSW build {build_s:.1f}s"
        )
    queries = draw(q)
    exact = [[str(i) for i in row] for row in _exact_top_k(matrix, queries, K)]
    scan = latency(lambda v: index.exact_search(version, v, K), queries[: args.scan_queries])
    scan_hits, _ = index.exact_search(version, queries[:5], K)
    assert overlaps(scan_hits, exact[:5], K).mean() > 0.999, "the exact scan disagrees with numpy"
    print(
        f"baseline, exact scan in PostgreSQL (no index), {args.scan_queries} queries: "
        f"p50 {scan['median_ms']:.1f} ms, p99 {scan['p99_ms']:.1f} ms"
    )
    out = {"n": n, "dim": dim, "shape": shape, "queries": q, "insert_s": insert_s, "build_s": build_s}
    out |= {"reused": reuse, "exact_scan": scan, "ef": {}}
    for ef in args.ef_search:
        index.hnsw = hnsw.model_copy(update={"ef_search": ef})
        index.search(version, queries[:1], K)  # warm
        t = latency(lambda v: index.search(version, v, K), queries)
        hits = [index.search(version, v, K)[0][0] for v in queries]
        recall = float(overlaps(hits, exact, K).mean())
        out["ef"][ef] = {"recall@10": recall, **t}
        print(
            f"ef_search {ef:>4}: recall@10 vs exact {recall:.3f} | p50 {t['median_ms']:.2f} ms, "
            f"p99 {t['p99_ms']:.2f} ms -> {scan['median_ms'] / t['median_ms']:.0f}x faster than the scan (p50)"
        )
    if not args.keep:
        with store.engine.begin() as conn:
            index.drop(conn, version)
    store.dispose()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=None, help="first N documents (default: all)")
    ap.add_argument("--raw-docs", type=int, default=128, help="documents for the throughput comparison")
    ap.add_argument("--db", default=None, help="store URL (default: a fresh SQLite file)")
    ap.add_argument("--pg", default=None, help="PostgreSQL URL with pgvector, for pgvector latency")
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="--db already holds both complete indexes: skip re-embedding (and section 1); with --synthetic: "
        "reuse the vectors and index kept by --keep (same --n, --seed)",
    )
    ap.add_argument("--synthetic", action="store_true", help="only the vector-index benchmark (needs --pg)")
    ap.add_argument("--n", type=int, default=100_000, help="--synthetic: number of vectors")
    ap.add_argument("--queries", type=int, default=100, help="--synthetic: number of queries")
    ap.add_argument("--scan-queries", type=int, default=10, help="--synthetic: queries timed on the exact scan")
    ap.add_argument("--batch", type=int, default=5_000, help="--synthetic: vectors per insert transaction")
    ap.add_argument("--ef-search", type=int, nargs="+", default=[40, 100, 200, 400], help="--synthetic: values")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clusters", type=int, default=0, help="--synthetic: 0 = uniform (worst case), else C topics")
    ap.add_argument("--spread", type=float, default=1.0, help="--synthetic: noise norm around a cluster centre")
    ap.add_argument("--keep", action="store_true", help="--synthetic: keep the vectors and index afterwards")
    args = ap.parse_args()
    if args.synthetic:
        synthetic(args)
        return

    docs = read_corpus(CRANFIELD / "corpus.jsonl", limit=args.docs)
    queries = read_queries(CRANFIELD / "queries.jsonl")
    qrels = read_qrels(CRANFIELD / "qrels.tsv")
    old, new = get_encoder("all-MiniLM-L6-v2"), get_encoder("multilingual-e5-small")
    db = args.db or f"sqlite:///{tempfile.mkdtemp(prefix='bench-emb-')}/bench.db"
    store = open_store(db)
    index = NumpyIndex(store)
    out: dict = {"docs": len(docs), "queries": len(queries)}
    print(f"Cranfield: {len(docs)} documents, {len(queries)} queries; store {store.display_url}")

    print("\n== 1. re-embedding throughput vs raw encode (rate limit off) ==")
    for role, enc in () if args.reuse else (("old", old), ("new", new)):
        r = throughput(index, enc, docs, args.raw_docs)
        out[f"throughput_{role}"] = r
        print(
            f"{enc.key}: raw encode {r['raw_docs_per_s']:.2f} docs/s, job {r['job_docs_per_s']:.2f} docs/s "
            f"on the same {r['sample']} docs (interleaved by 64) "
            f"-> ratio {r['ratio']:.2f}x (target >= 0.9x); resumed job embedded the other "
            f"{r['resumed_embedded']} at {r['full_job_docs_per_s']:.2f} docs/s, of which encoding alone ran at "
            f"{r['in_job_encode_docs_per_s']:.2f} docs/s -> in-job ratio {r['in_job_ratio']:.3f}x"
        )
    init_serving(store, old.key, "bench")

    qids = [q.id for q in queries]
    texts = [q.text for q in queries]
    q_old, q_new = old.encode_queries(texts), new.encode_queries(texts)
    ids = sorted(index.ids(old.key))
    relevant = judged(qids, qrels, ids)
    old_hits, _ = index.search(old.key, q_old, K)
    new_hits, _ = index.search(new.key, q_new, K)
    ov = overlaps(old_hits, new_hits, K)
    q_oldm = quality(qids, old_hits, relevant, K)
    q_newm = quality(qids, new_hits, relevant, K)
    out["overlap_old_new"] = {
        "mean": float(ov.mean()),
        "median": float(np.median(ov)),
        "p10": float(np.percentile(ov, 10)),
        "quality_old": q_oldm,
        "quality_new": q_newm,
    }
    print(f"\n== 2. top-{K} overlap old vs new on {len(qids)} queries ==")
    print(f"mean {ov.mean():.3f}, median {np.median(ov):.2f}, p10 {np.percentile(ov, 10):.2f}")
    print(f"old  recall@10 {q_oldm['recall@10']:.3f}  nDCG@10 {q_oldm['ndcg@10']:.3f}")
    print(
        f"new  recall@10 {q_newm['recall@10']:.3f}  nDCG@10 {q_newm['ndcg@10']:.3f}  "
        f"({q_oldm['judged_queries']} judged queries)"
    )

    print("\n== 3. adapters (fit on paired documents; chosen on half the queries; scored on the other half) ==")
    rng = np.random.default_rng(7)
    perm = rng.permutation(len(qids))
    choose_q, held_q = perm[: len(perm) // 2], perm[len(perm) // 2 :]
    _, x = index.load(new.key, ids)
    _, y = index.load(old.key, ids)
    t0 = time.perf_counter()
    sel = select(x, y, q_new[choose_q], k=K, seed=0)
    fit_s = time.perf_counter() - t0
    held_ids = [qids[i] for i in held_q]
    ref_hits = [new_hits[i] for i in held_q]
    ref_q = quality(held_ids, ref_hits, relevant, K)
    old_q = quality(held_ids, [old_hits[i] for i in held_q], relevant, K)
    mism_hits, _ = index.search(old.key, q_new[held_q], K)  # what a silent version mismatch would return
    mism = quality(held_ids, mism_hits, relevant, K)
    print(
        f"held-out queries: {len(held_ids)} ({ref_q['judged_queries']} judged); re-index nDCG@10 "
        f"{ref_q['ndcg@10']:.3f}, recall@10 {ref_q['recall@10']:.3f}; old index with old queries nDCG@10 "
        f"{old_q['ndcg@10']:.3f}; new queries on old index without adapter nDCG@10 {mism['ndcg@10']:.3f}"
    )
    print(
        f"selection: {sel.train} training pairs, {sel.heldout} held-out documents, {fit_s:.1f}s for "
        f"{len(sel.scores)} candidates; chosen {sel.chosen.label}"
    )
    forms = {}
    for form in FORMS:
        m = refit(sel.best_per_form[form], x, y)
        label = m.label
        hits, _ = index.search(old.key, m.apply(q_new[held_q]), K)
        qa = quality(held_ids, hits, relevant, K)
        res = {
            "variant": label,
            "selection_overlap": sel.scores[label],
            "overlap_with_reindex": float(overlaps(hits, ref_hits, K).mean()),
            "overlap_with_old": float(overlaps(hits, [old_hits[i] for i in held_q], K).mean()),
            "ndcg": qa["ndcg@10"],
            "recall": qa["recall@10"],
            "ndcg_share": qa["ndcg@10"] / ref_q["ndcg@10"],
            "recall_share": qa["recall@10"] / ref_q["recall@10"],
            "heldout_doc_overlap": heldout_overlap(m, q_new[held_q], y, x, K),
        }
        forms[form] = res
        print(
            f"{label:22s} overlap with re-index {res['overlap_with_reindex']:.3f} | nDCG@10 {res['ndcg']:.3f} "
            f"= {res['ndcg_share']:.0%} of re-index | recall@10 {res['recall']:.3f} = {res['recall_share']:.0%}"
            f" (target >= 90%)"
        )
    out["adapters"] = {
        "chosen": sel.chosen.label,
        "forms": forms,
        "reindex": ref_q,
        "old": old_q,
        "mismatch_no_adapter": mism,
    }

    print(f"\n== 4. search latency, one query at a time (numpy exact search over {len(ids)} vectors) ==")
    save_adapter(store, new.key, old.key, sel.chosen, {"kept_share": forms[sel.chosen.form]["ndcg_share"]}, "bench")
    retriever = Retriever(index, ttl=60)
    retriever.search(QueryVectors(q_old[:1], old.key))  # warm caches
    retriever.search(QueryVectors(q_new[:1], new.key))
    direct = latency(lambda q: retriever.search(QueryVectors(q, old.key), K), q_old, repeat=3)
    adapted = latency(lambda q: retriever.search(QueryVectors(q, new.key), K), q_new, repeat=3)
    out["latency_numpy"] = {"direct": direct, "adapter": adapted, "ratio": adapted["median_ms"] / direct["median_ms"]}
    print(f"direct  median {direct['median_ms']:.3f} ms, p95 {direct['p95_ms']:.3f} ms")
    print(
        f"adapter median {adapted['median_ms']:.3f} ms, p95 {adapted['p95_ms']:.3f} ms "
        f"-> {out['latency_numpy']['ratio']:.2f}x"
    )
    if args.pg:
        from changeover.embeddings.pgvector import PgvectorIndex

        pg = open_store(args.pg)
        pindex = PgvectorIndex(pg)
        _, xo = index.load(old.key, ids)
        with pg.engine.begin() as conn:
            pindex.add(conn, old.key, ids, xo)
        t0 = time.perf_counter()
        pindex.finish(old.key)
        build = time.perf_counter() - t0
        init_serving(pg, old.key, "bench")
        save_adapter(pg, new.key, old.key, sel.chosen, {}, "bench")
        pr = Retriever(pindex, ttl=60)
        pr.search(QueryVectors(q_new[:1], new.key))
        pd = latency(lambda q: pr.search(QueryVectors(q, old.key), K), q_old)
        pa = latency(lambda q: pr.search(QueryVectors(q, new.key), K), q_new)
        hits, _ = pindex.search(old.key, q_old, K)
        recall_vs_exact = float(overlaps(hits, old_hits, K).mean())
        out["latency_pgvector"] = {
            "direct": pd,
            "adapter": pa,
            "hnsw_build_s": build,
            "hnsw_overlap_with_exact": recall_vs_exact,
        }
        print(
            f"pgvector HNSW (built in {build:.1f}s, top-10 agreement with exact {recall_vs_exact:.3f}): "
            f"direct median {pd['median_ms']:.2f} ms, adapter median {pa['median_ms']:.2f} ms "
            f"-> {pa['median_ms'] / pd['median_ms']:.2f}x"
        )
        pg.dispose()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
