"""Both vector backends: versioned rows side by side, exact numpy search persisted in the
store (SQLite and PostgreSQL), and pgvector with one partial HNSW index per version."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from changeover.embeddings.errors import BackendError
from changeover.embeddings.index import NumpyIndex, open_index
from changeover.embeddings.overlap import overlaps
from changeover.embeddings.pgvector import PgvectorIndex, index_name
from changeover.store import open_store


def _fill(index, emb) -> None:
    with index.store.engine.begin() as conn:
        index.add(conn, emb.old_key, emb.ids, emb.old_docs)
        index.add(conn, emb.new_key, emb.ids, emb.new_docs)


def _brute(docs: np.ndarray, ids: list[str], queries: np.ndarray, k: int) -> list[list[str]]:
    order = np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :k]
    return [[ids[j] for j in row] for row in order]


def test_numpy_index_is_exact_and_persisted(store, embedded):
    index = NumpyIndex(store)
    _fill(index, embedded)
    assert index.counts() == {embedded.old_key: len(embedded.ids), embedded.new_key: len(embedded.ids)}
    hits, scores = index.search(embedded.old_key, embedded.old_queries, 10)
    assert hits == _brute(embedded.old_docs, embedded.ids, embedded.old_queries, 10)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    # another process (a fresh store object) sees the same vectors, bit for bit
    again = NumpyIndex(open_store(store.url))
    ids, matrix = again.load(embedded.new_key, embedded.ids[:5])
    assert ids == sorted(embedded.ids[:5])
    want = embedded.new_docs[[embedded.ids.index(i) for i in ids]]
    assert np.array_equal(matrix, want)
    # dropping one version leaves the other untouched
    with store.engine.begin() as conn:
        assert again.drop(conn, embedded.new_key) == len(embedded.ids)
    assert again.counts() == {embedded.old_key: len(embedded.ids)}


def test_pgvector_needs_postgresql(sqlite_url):
    with pytest.raises(BackendError, match="needs a PostgreSQL store"):
        open_index(open_store(sqlite_url), "pgvector")


def test_pgvector_side_table_with_partial_hnsw_per_version(pgvector_url, embedded):
    store = open_store(pgvector_url)
    index = PgvectorIndex(store)
    _fill(index, embedded)
    index.finish(embedded.old_key)
    index.finish(embedded.new_key)
    assert index.has_hnsw(embedded.old_key) and index.has_hnsw(embedded.new_key)
    with store.engine.connect() as conn:
        defs = dict(
            conn.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'embedding_pgvectors'")
            ).all()
        )
    old_def = defs[index_name(embedded.old_key)]
    assert "hnsw" in old_def and "vector_cosine_ops" in old_def and embedded.old_key in old_def
    # that the planner searches through the partial index is checked in test_hnsw.py on 3,000 rows: on these
    # 100, with the statistics finish() now gathers, it rightly prefers the primary key and a sort (exact)
    # whatever serves the search must agree with exact search on nearly every neighbour
    hits, _ = index.search(embedded.new_key, embedded.new_queries[:20], 10)
    exact = _brute(embedded.new_docs, embedded.ids, embedded.new_queries[:20], 10)
    assert overlaps(hits, exact, 10).mean() >= 0.95
    ids, matrix = index.load(embedded.old_key, embedded.ids[:3])
    want = embedded.old_docs[[embedded.ids.index(i) for i in ids]]
    assert np.allclose(matrix, want, atol=1e-6)
    with store.engine.begin() as conn:
        assert index.drop(conn, embedded.old_key) == len(embedded.ids)
    assert not index.has_hnsw(embedded.old_key) and index.count(embedded.new_key) == len(embedded.ids)
    store.dispose()


def test_pgvector_hnsw_parameters_from_the_spec_and_exact_search(pgvector_url, embedded):
    from sqlalchemy import event

    from changeover.embeddings.compare import compare
    from changeover.embeddings.config import EmbeddingsConfig
    from changeover.embeddings.corpus import Query

    cfg = EmbeddingsConfig.model_validate(
        {"backend": "pgvector", "hnsw": {"m": 8, "ef_construction": 32, "ef_search": 60}}
    )
    store = open_store(pgvector_url)
    index = open_index(store, "pgvector", cfg.hnsw)
    _fill(index, embedded)
    index.finish(embedded.old_key)
    index.finish(embedded.new_key)
    with store.engine.connect() as conn:
        indexdef = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": index_name(embedded.old_key)}
        ).scalar()
    assert "m='8'" in indexdef and "ef_construction='32'" in indexdef
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    index.search(embedded.old_key, embedded.old_queries[:2], 10)
    assert "SET LOCAL hnsw.ef_search = 60" in statements
    index.search(embedded.old_key, embedded.old_queries[:2], 80)  # ef_search is at least k
    assert "SET LOCAL hnsw.ef_search = 80" in statements
    with store.engine.connect() as conn:  # SET LOCAL: nothing leaks into the pooled connection
        assert conn.execute(text("SHOW hnsw.ef_search")).scalar() == "40"
    # exact search scans without the index and equals brute force
    exact, _ = index.exact_search(embedded.new_key, embedded.new_queries[:10], 10)
    assert exact == _brute(embedded.new_docs, embedded.ids, embedded.new_queries[:10], 10)
    # compare separates the model change (on exact search) from the index's own error
    queries = [Query(str(i), "q") for i in range(10)]
    result = compare(
        index,
        embedded.old_key,
        embedded.new_key,
        queries,
        embedded.old_queries[:10],
        embedded.new_queries[:10],
    )
    assert set(result.index_recall) == {"old", "new"} and all(0.9 <= r <= 1.0 for r in result.index_recall.values())
    want = overlaps(
        _brute(embedded.old_docs, embedded.ids, embedded.old_queries[:10], 10),
        _brute(embedded.new_docs, embedded.ids, embedded.new_queries[:10], 10),
        10,
    )
    assert np.allclose(result.overlap.overlap, want)
    assert NumpyIndex(store).approximate(embedded.old_key) is False
    store.dispose()


def test_pgvector_search_stays_approximate_and_exact_stays_exact_on_a_reused_connection(pgvector_url):
    """psycopg prepares a statement after 5 runs on a connection, and a cached plan ignores later
    settings: the index search once came back exact (a sequential scan) and slow. Random vectors and
    a deliberately weak graph make the two searches tell apart."""
    from changeover.embeddings.config import HnswConfig

    rng = np.random.default_rng(3)
    docs = rng.standard_normal((3000, 384)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = rng.standard_normal((12, 384)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = [str(i) for i in range(len(docs))]
    store = open_store(pgvector_url)
    index = PgvectorIndex(store, HnswConfig(m=4, ef_construction=8, ef_search=10))
    with store.engine.begin() as conn:
        index.add(conn, "random@1", ids, docs)
    index.finish("random@1")
    truth = _brute(docs, ids, queries, 10)
    for _ in range(2):  # alternate, each well past psycopg's prepare threshold
        exact = [index.exact_search("random@1", q, 10)[0][0] for q in queries]
        assert exact == truth
        approx = [index.search("random@1", q, 10)[0][0] for q in queries]
        assert overlaps(approx, truth, 10).mean() < 0.9  # the weak graph misses neighbours: the index answered
    store.dispose()
