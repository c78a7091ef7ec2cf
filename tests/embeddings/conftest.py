"""Fixtures for the embedding tests: a Cranfield subset, the two real models, their vectors
(computed once per session), and a fresh pgvector database.

The subset is every document judged relevant to the first queries, topped up
with other documents, so recall/nDCG on it mean something. Its size is
CHANGEOVER_TEST_EMBED_DOCS (default 100: multilingual-e5-small runs at
~0.3-1 s per Cranfield abstract on two shared cores).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from changeover.embeddings.corpus import Document, Query, read_corpus, read_qrels, read_queries
from changeover.providers.embedders import Encoder, get_encoder

CRANFIELD = Path(__file__).resolve().parents[3] / "shared" / "data" / "cranfield"
N_DOCS = int(os.environ.get("CHANGEOVER_TEST_EMBED_DOCS", "100"))


def _need(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{path} is missing")
        pytest.skip(f"{path} is not beside the repo")
    return path


@dataclass
class Subset:
    docs: list[Document]
    queries: list[Query]  # queries with at least one relevant document in the subset
    qrels: dict[str, dict[str, float]]
    dir: Path  # corpus.jsonl / queries.jsonl / qrels.tsv of the subset


@pytest.fixture(scope="session")
def cranfield() -> Path:
    return _need(CRANFIELD)


@pytest.fixture(scope="session")
def subset(cranfield: Path, tmp_path_factory) -> Subset:
    docs = read_corpus(cranfield / "corpus.jsonl")
    queries = read_queries(cranfield / "queries.jsonl")
    qrels = read_qrels(cranfield / "qrels.tsv")
    chosen: list[str] = []
    for q in queries:
        new = [d for d in qrels.get(q.id, {}) if d not in chosen]
        if len(chosen) + len(new) > int(N_DOCS * 0.7):
            break
        chosen += new
    chosen_set = set(chosen)
    for d in docs:
        if len(chosen_set) >= N_DOCS:
            break
        chosen_set.add(d.id)
    sub_docs = [d for d in docs if d.id in chosen_set]
    sub_queries = [q for q in queries if any(d in chosen_set for d in qrels.get(q.id, {}))]
    out = tmp_path_factory.mktemp("cranfield-subset")
    with (out / "corpus.jsonl").open("w") as fh:
        for d in sub_docs:
            fh.write(json.dumps({"_id": d.id, "text": d.text}) + "\n")
    with (out / "queries.jsonl").open("w") as fh:
        for q in sub_queries:
            fh.write(json.dumps({"_id": q.id, "text": q.text}) + "\n")
    (out / "qrels.tsv").write_text((cranfield / "qrels.tsv").read_text())
    return Subset(sub_docs, sub_queries, qrels, out)


@pytest.fixture(scope="session")
def minilm() -> Encoder:
    return get_encoder("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def e5() -> Encoder:
    return get_encoder("multilingual-e5-small")


@dataclass
class Embedded:
    ids: list[str]
    old_docs: np.ndarray
    new_docs: np.ndarray
    old_queries: np.ndarray
    new_queries: np.ndarray
    old_key: str
    new_key: str


@pytest.fixture(scope="session")
def embedded(subset: Subset, minilm: Encoder, e5: Encoder) -> Embedded:
    """The subset embedded once by each real model (old = MiniLM, new = e5)."""
    texts = [d.text for d in subset.docs]
    qtexts = [q.text for q in subset.queries]
    return Embedded(
        [d.id for d in subset.docs],
        minilm.encode_documents(texts),
        e5.encode_documents(texts),
        minilm.encode_queries(qtexts),
        e5.encode_queries(qtexts),
        minilm.key,
        e5.key,
    )


@pytest.fixture
def small_corpus(cranfield: Path, tmp_path: Path) -> Path:
    """24 Cranfield documents as a corpus file (for job and CLI tests)."""
    path = tmp_path / "small.jsonl"
    lines = (cranfield / "corpus.jsonl").read_text().splitlines()[:24]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def pgvector_url(request) -> str:
    """A fresh database on the test PostgreSQL, which has pgvector (scripts/setup.d/20-pgvector.sh)."""
    if not os.environ.get("CHANGEOVER_TEST_PGVECTOR"):
        if os.environ.get("CI"):
            raise RuntimeError(
                "CI=true but CHANGEOVER_TEST_PGVECTOR is unset: scripts/setup.d/20-pgvector.sh could not build pgvector"
            )
        pytest.skip("no pgvector: set CHANGEOVER_TEST_PGVECTOR=1 or run scripts/test")
    return request.getfixturevalue("pg_url")
