"""The `embeddings:` spec section, rates and durations, and the Cranfield readers' quirks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from changeover.config import spec_from_dict
from changeover.embeddings.config import EmbeddingsConfig, parse_duration, parse_rate
from changeover.embeddings.corpus import read_corpus, read_corpus_report, read_qrels, read_queries
from changeover.embeddings.errors import CorpusError
from changeover.errors import SpecError

BASE = {"incumbent": "a", "candidates": ["b"], "dimensions": {"correctness": {}}}


def test_rate_and_duration_parsing():
    assert parse_rate("600/min") == pytest.approx(10.0)
    assert parse_rate("2/s") == 2.0
    assert parse_rate("off") is None and parse_rate(None) is None
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("90s") == timedelta(seconds=90)
    with pytest.raises(SpecError, match="--rate"):
        parse_rate("fast")
    with pytest.raises(SpecError, match="stability_period"):
        parse_duration("a week")


def test_spec_section_defaults_and_thresholds(tmp_path: Path):
    spec = spec_from_dict(
        {**BASE, "embeddings": {"incumbent": "minilm", "candidate": "e5", "corpus": "docs.jsonl"}}, tmp_path / "m.yaml"
    )
    cfg = spec.section("embeddings", EmbeddingsConfig).resolved(tmp_path)
    assert cfg.thresholds.preserves == 0.8 and cfg.thresholds.investigate == 0.7
    assert cfg.k == 10 and cfg.stability == timedelta(days=7)
    assert cfg.corpus == (tmp_path / "docs.jsonl").resolve()


@pytest.mark.parametrize(
    "section, field",
    [
        ({"incumbent": "m", "candidate": "e", "treshold": 1}, "embeddings.treshold"),
        ({"incumbent": "m", "candidate": "e", "rate": "lots"}, "embeddings.rate"),
        ({"incumbent": "m", "candidate": "e", "stability_period": "soon"}, "embeddings.stability_period"),
        ({"incumbent": "m", "candidate": "e", "lease": "long"}, "embeddings.lease"),
        ({"hnsw": {"m": 32, "ef_construction": 40}}, "embeddings.hnsw"),
        ({"hnsw": {"ef_serch": 40}}, "embeddings.hnsw.ef_serch"),
        ({"hnsw": {"build_memory": "lots"}}, "embeddings.hnsw.build_memory"),
        (
            {"incumbent": "m", "candidate": "e", "thresholds": {"preserves": 0.5, "investigate": 0.7}},
            "embeddings.thresholds",
        ),
    ],
)
def test_spec_errors_name_the_field(section, field):
    spec = spec_from_dict({**BASE, "embeddings": section}, "migration.yaml")
    with pytest.raises(SpecError) as err:
        spec.section("embeddings", EmbeddingsConfig)
    assert f"migration.yaml: field '{field}" in str(err.value)


def test_cranfield_quirks(cranfield: Path):
    docs, empty = read_corpus_report(cranfield / "corpus.jsonl")
    assert len(docs) == 1398 and empty == ["471", "995"]  # listed, not silently dropped
    assert docs[0].text.startswith("experimental investigation of the aerodynamics")
    queries = read_queries(cranfield / "queries.jsonl")
    assert len(queries) == 225 and queries[0].id == "1" and queries[-1].id == "225"
    qrels = read_qrels(cranfield / "qrels.tsv")
    assert len(qrels) == 225
    assert qrels["1"]["184"] == 3.0  # code 2 -> gain 3
    assert all(g > 0 for rel in qrels.values() for g in rel.values())  # code -1 dropped
    assert sum(len(r) for r in qrels.values()) == 1837 - 225


def test_corpus_errors_name_file_and_line(tmp_path: Path):
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n')
    with pytest.raises(CorpusError, match=r"c.jsonl:2: field '_id'.*line 1"):
        read_corpus(bad)
    bad.write_text('{"_id": "1", "text": "a"}\nnot json\n')
    with pytest.raises(CorpusError, match=r"c.jsonl:2: not valid JSON"):
        read_corpus(bad)
