"""pgvector HNSW at work on a real PostgreSQL: the spec's parameters reach the built index
(read back from PostgreSQL) and each search's session; builds never overlap; a failed
build's INVALID index is rebuilt; COPY bulk loads; and `compare` reports the index's own
recall against exact search, which drops when ``ef_search`` is starved."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from sqlalchemy import event, text

from changeover.cli import run
from changeover.config import spec_from_dict
from changeover.embeddings.compare import compare
from changeover.embeddings.config import EmbeddingsConfig, HnswConfig
from changeover.embeddings.corpus import Query
from changeover.embeddings.index import open_index
from changeover.embeddings.overlap import overlaps
from changeover.embeddings.pgvector import PgvectorIndex, index_name
from changeover.store import open_store

N, DIM = 3000, 384  # random unit vectors: below ~2,000 rows the planner scans instead of using the index


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def pg(pgvector_url):
    store = open_store(pgvector_url)
    yield store
    store.dispose()


def _load(index: PgvectorIndex, version: str, docs: np.ndarray) -> list[str]:
    ids = [f"d{i}" for i in range(len(docs))]
    with index.store.engine.begin() as conn:
        index.copy_rows(conn, version, ids, docs)
    return ids


def test_spec_parameters_reach_the_index_and_every_search_session(pg):
    spec = spec_from_dict(
        {
            "embeddings": {
                "backend": "pgvector",
                "hnsw": {"m": 6, "ef_construction": 24, "ef_search": 37, "build_workers": 1, "build_memory": "96MB"},
            }
        },
        "migration.yaml",
        core=False,
    )
    cfg = spec.section("embeddings", EmbeddingsConfig)
    index = open_index(pg, cfg.backend, cfg.hnsw)
    docs = _unit(np.random.default_rng(1), N)
    ids = _load(index, "random@1", docs)
    assert index.load("random@1", ids[:2])[1].tobytes() == docs[:2].tobytes()  # COPY is bit-exact
    index.finish("random@1")
    # PostgreSQL's own record of the built index
    assert index.index_options("random@1") == {"m": "6", "ef_construction": "24"}
    with pg.engine.connect() as conn:
        indexdef = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": index_name("random@1")}
        ).scalar()
    assert "m='6'" in indexdef and "ef_construction='24'" in indexdef and "hnsw" in indexdef
    build = index.last_build
    assert (build.workers, build.build_memory, build.fits_in_memory) == (1, "96MB", True)
    # the setting each query really ran with, read in its own session right after it ran
    seen: list[tuple[str, str]] = []

    def after(conn, cursor, statement, params, context, many) -> None:
        if statement.startswith("SELECT doc_id"):
            raw = conn.connection.driver_connection
            seen.append(
                tuple(
                    raw.execute(
                        "SELECT current_setting('hnsw.ef_search'), current_setting('maintenance_work_mem')"
                    ).fetchone()
                )
            )

    event.listen(pg.engine, "after_cursor_execute", after)
    queries = _unit(np.random.default_rng(2), 3)
    index.search("random@1", queries, 10)
    index.search("random@1", queries[:1], 50)  # ef_search is at least k
    event.remove(pg.engine, "after_cursor_execute", after)
    assert [s[0] for s in seen] == ["37", "37", "37", "50"]
    assert all(s[1] != "96MB" for s in seen)  # the build's memory setting stayed in the build session
    with pg.engine.connect() as conn:  # nothing left on the pooled connections
        assert conn.execute(text("SHOW hnsw.ef_search")).scalar() == "40"
    # the settings compare reports: as built, and the session's ef_search
    assert index.search_settings("random@1", 10) == {"m": 6, "ef_construction": 24, "ef_search": 37}


def test_two_builds_at_once_wait_for_each_other_instead_of_deadlocking(pg):
    """Two CREATE INDEX CONCURRENTLY on one table wait for each other's transactions; PostgreSQL
    killed one as a deadlock when a benchmark build and another build overlapped."""
    index = PgvectorIndex(pg, HnswConfig(m=8, ef_construction=32))
    rng = np.random.default_rng(4)
    for v in ("a@1", "b@1"):
        _load(index, v, _unit(rng, N))
    start, errors = threading.Barrier(2), []

    def build(version: str) -> None:
        try:
            own = PgvectorIndex(pg, index.hnsw)
            start.wait()
            own.finish(version)
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(v,)) for v in ("a@1", "b@1")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert index.has_hnsw("a@1") and index.has_hnsw("b@1")


def test_an_invalid_index_left_by_a_failed_build_is_rebuilt(pg):
    index = PgvectorIndex(pg, HnswConfig(m=8, ef_construction=32))
    _load(index, "random@1", _unit(np.random.default_rng(5), N))
    index.finish("random@1")
    with pg.engine.begin() as conn:  # what a build killed half-way leaves behind
        conn.execute(
            text(f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{index_name('random@1')}'::regclass")
        )
    assert not index.has_hnsw("random@1") and not index.approximate("random@1")
    index.finish("random@1")
    assert index.has_hnsw("random@1")
    assert any("invalid index" in n for n in index.last_build.notices)


def test_compare_reports_the_index_recall_against_exact_search(pg):
    """ef_search 1 (floored to k = 10) finds a quarter of the true top-10 on random vectors, 200
    nearly all; the overlap old vs new is measured on exact search either way."""
    rng = np.random.default_rng(6)
    old_docs = _unit(rng, N)
    new_docs = old_docs + 0.01 * rng.standard_normal((N, DIM)).astype(np.float32)  # a nearby "new model"
    new_docs /= np.linalg.norm(new_docs, axis=1, keepdims=True)
    index = PgvectorIndex(pg, HnswConfig())
    _load(index, "old@1", old_docs)
    _load(index, "new@1", new_docs)
    index.finish("old@1")
    index.finish("new@1")
    queries = [Query(f"q{i}", "") for i in range(20)]
    q_old = _unit(rng, 20)
    q_new = q_old + 0.01 * rng.standard_normal((20, DIM)).astype(np.float32)
    q_new /= np.linalg.norm(q_new, axis=1, keepdims=True)
    recall, overlap = {}, {}
    for ef in (1, 200):
        index.hnsw = HnswConfig(ef_search=ef)
        result = compare(index, "old@1", "new@1", queries, q_old, q_new, k=10)
        recall[ef], overlap[ef] = result.index_recall, result.overlap.mean
        assert result.index.settings["old"] == {"m": 16, "ef_construction": 64, "ef_search": max(ef, 10)}
        data = result.to_json()
        assert data["index"]["recall"] == {n: round(v, 4) for n, v in recall[ef].items()} == data["index_recall"]
        assert set(data["index"]["recall_quantiles"]["new"]) == {"p05", "median"}
        assert 0 <= data["index"]["served_overlap"] <= 1
    assert max(recall[1].values()) < 0.6, recall
    assert min(recall[200].values()) > 0.9, recall
    # the model change is measured on exact search: it does not move with the index's setting
    brute = [np.argsort(-(q @ d.T), kind="stable")[:, :10] for q, d in ((q_old, old_docs), (q_new, new_docs))]
    want = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(*brute, strict=True)])
    assert overlap[1] == overlap[200] == pytest.approx(want)


def test_compare_cli_shows_index_recall_beside_the_overlap(pgvector_url, minilm, e5, cranfield, tmp_path, capsys):
    """`compare --ef-search` on pgvector: a table of each index's recall against exact search, the
    overlap as served, the same in the JSON. The documents are random vectors filed under the two
    real models' versions (the queries are embedded by the real models)."""
    store = open_store(pgvector_url)
    index = PgvectorIndex(store, HnswConfig())
    rng = np.random.default_rng(7)
    for key in (minilm.key, e5.key):
        _load(index, key, _unit(rng, N))
        index.finish(key)
    store.dispose()
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join((cranfield / "queries.jsonl").read_text().splitlines()[:8]) + "\n")
    out = tmp_path / "compare.json"
    args = ["embeddings", "compare", "--old", "minilm", "--new", "e5", "--queries", str(queries)]
    args += ["--backend", "pgvector", "--db", pgvector_url, "--ef-search", "1", "--json", str(out)]
    assert run(args) == 0
    printed = capsys.readouterr().out
    assert "pgvector index vs exact search" in printed and "recall@10 vs exact" in printed
    assert "as the indexes serve them" in printed
    data = json.loads(out.read_text())
    assert data["index"]["settings"]["new"] == {"m": 16, "ef_construction": 64, "ef_search": 10}
    assert data["index_recall"]["old"] < 0.6  # starved: the index's misses are shown, not blamed on the model
    assert data["search"] == "exact"


@pytest.mark.parametrize(
    "hnsw, field",
    [({"ef_serch": 50}, "embeddings.hnsw.ef_serch"), ({"build_workers": -1}, "embeddings.hnsw.build_workers")],
)
def test_a_typo_in_the_hnsw_spec_is_an_error_naming_the_field(tmp_path: Path, capsys, hnsw, field):
    spec = tmp_path / "migration.yaml"
    spec.write_text(yaml.safe_dump({"embeddings": {"backend": "numpy", "hnsw": hnsw}}))
    assert run(["embeddings", "status", "--spec", str(spec), "--db", f"sqlite:///{tmp_path / 's.db'}"]) == 2
    err = capsys.readouterr().err
    assert f"field '{field}'" in err and "Traceback" not in err


def test_a_version_loaded_after_the_last_analyze_is_searched_through_its_index(pg):
    """Rows of a new version with no statistics yet: the planner took the primary key and sorted
    every row (exact, ~15x slower at 100k). ``finish`` analyzes the table after the build."""
    index = PgvectorIndex(pg, HnswConfig(ef_search=10))
    rng = np.random.default_rng(8)
    _load(index, "old@1", _unit(rng, N))
    index.finish("old@1")
    with pg.engine.begin() as conn:
        conn.execute(text("ANALYZE embedding_pgvectors"))
    _load(index, "new@1", _unit(rng, N))  # the statistics know nothing of new@1
    index.finish("new@1")
    queries = _unit(rng, 12)
    with pg.engine.begin() as conn:
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                text(
                    "EXPLAIN SELECT doc_id FROM embedding_pgvectors WHERE model_version = 'new@1' "
                    "ORDER BY embedding::vector(384) <=> CAST(:q AS vector(384)) LIMIT 10"
                ),
                {"q": "[" + ",".join(f"{x:.6f}" for x in queries[0]) + "]"},
            ).all()
        )
    assert index_name("new@1") in plan, plan.splitlines()[-2:]
    served, _ = index.search("new@1", queries, 10)
    exact, _ = index.exact_search("new@1", queries, 10)
    assert overlaps(served, exact, 10).mean() < 0.9  # ef_search 10 on random vectors: the index answered
