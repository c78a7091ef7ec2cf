"""`changeover embeddings ...` end to end on real models: spec-less flags and a spec, JSON
outputs, the refusal of mismatched queries, and user errors printed without traceback, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from changeover.cli import run
from changeover.store import open_store
from changeover.store.events import list_events


@pytest.fixture
def queries(cranfield: Path, tmp_path: Path) -> Path:
    path = tmp_path / "queries.jsonl"
    path.write_text("\n".join((cranfield / "queries.jsonl").read_text().splitlines()[:12]) + "\n")
    return path


def test_full_migration_spec_less(tmp_path, small_corpus, queries, cranfield, capsys):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    common = ["--db", db]
    assert (
        run(
            [
                "embeddings",
                "reembed",
                "--to",
                "minilm",
                "--old",
                "minilm",
                "--corpus",
                str(small_corpus),
                "--no-progress",
                "--actor",
                "alice",
                *common,
            ]
        )
        == 0
    )
    assert "now serves" in capsys.readouterr().out
    # a query embedded by the new model is refused by the old index
    assert run(["embeddings", "search", "wing in a slipstream", "--query-model", "e5", *common]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err and "not comparable" in err
    out = tmp_path / "reembed.json"
    assert (
        run(
            [
                "embeddings",
                "reembed",
                "--to",
                "e5",
                "--corpus",
                str(small_corpus),
                "--batch",
                "8",
                "--rate",
                "6000/min",
                "--no-progress",
                "--json",
                str(out),
                *common,
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["embedded"] == 24
    cmp_json = tmp_path / "compare.json"
    assert (
        run(
            [
                "embeddings",
                "compare",
                "--old",
                "minilm",
                "--new",
                "e5",
                "--queries",
                str(queries),
                "--qrels",
                str(cranfield / "qrels.tsv"),
                "--json",
                str(cmp_json),
                *common,
            ]
        )
        == 0
    )
    report = json.loads(cmp_json.read_text())
    assert report["queries"] == 12 and 0 <= report["mean_overlap"] <= 1
    assert report["verdict"] in ("preserves retrieval", "review", "investigate")
    assert set(report["quality"]) == {"old", "new"} and len(report["worst"]) == 10
    assert "lowest-overlap queries" in capsys.readouterr().out
    # the measurement is in the event log, where the migration report finds it
    from changeover.report.embeddings import embedding_stats

    with open_store(db) as s:
        events = list_events(s, kind_prefix="embeddings.compare")
        assert [e.payload["mean_overlap"] for e in events] == [report["mean_overlap"]]
        stats = embedding_stats(list_events(s))
    assert stats is not None and abs(stats.mean_overlap - report["mean_overlap"]) < 1e-3  # JSON rounds to 4 places
    fit_json = tmp_path / "fit.json"
    assert (
        run(
            [
                "embeddings",
                "fit-adapter",
                "--old",
                "minilm",
                "--new",
                "e5",
                "--queries",
                str(queries),
                "--pairs",
                "24",
                "--json",
                str(fit_json),
                "--reason",
                "bridge until re-index",
                *common,
            ]
        )
        == 0
    )
    fit = json.loads(fit_json.read_text())
    assert fit["active"] and fit["chosen"] in fit["heldout_overlap"] and fit["pairs"] == 24
    assert run(["embeddings", "search", "wing in a slipstream", "--query-model", "e5", *common]) == 0
    assert "via adapter" in capsys.readouterr().out
    st_json = tmp_path / "status.json"
    assert run(["embeddings", "status", "--json", str(st_json), *common]) == 0
    st = json.loads(st_json.read_text())
    assert st["serving"].startswith("all-MiniLM-L6-v2@") and len(st["indexes"]) == 2
    assert "technical debt" in capsys.readouterr().out and st["adapters"][0]["id"] == fit["id"]
    assert run(["embeddings", "switch", "--to", "e5", "--actor", "bob", "--reason", "overlap ok", *common]) == 0
    assert run(["embeddings", "cleanup", "minilm", *common]) == 2
    assert "stability period" in capsys.readouterr().err
    assert run(["embeddings", "cleanup", "minilm", "--stability", "0s", "--actor", "bob", *common]) == 0
    store = open_store(db)
    kinds = [e.kind for e in list_events(store, kind_prefix="embeddings.")]
    for kind in (
        "embeddings.reembed.started",
        "embeddings.reembed.finished",
        "embeddings.adapter.fitted",
        "embeddings.adapter.activated",
        "embeddings.switch",
        "embeddings.cleanup",
    ):
        assert kind in kinds
    switch = [e for e in list_events(store, kind_prefix="embeddings.switch")][-1]
    assert (switch.actor, switch.reason) == ("bob", "overlap ok")
    # the cleanup override and the adapter it deleted are on record, with who and why
    (clean,) = list_events(store, kind_prefix="embeddings.cleanup")
    assert clean.actor == "bob" and clean.payload["stability_overridden"] is True
    assert (clean.payload["stability_period"], clean.payload["spec_stability_period"]) == ("0s", "7d")
    assert clean.payload["adapters_deleted"] == [fit["id"]]
    (gone,) = list_events(store, kind_prefix="embeddings.adapter.deleted")
    assert (
        gone.payload["id"] == fit["id"] and gone.actor == "bob" and gone.payload["cleaned_up"].startswith("all-MiniLM")
    )


def test_adapter_retire(tmp_path, small_corpus, queries, capsys):
    db = ["--db", f"sqlite:///{tmp_path / 'retire.db'}"]
    for model in ("minilm", "e5"):
        args = ["embeddings", "reembed", "--to", model, "--old", "minilm", "--corpus", str(small_corpus)]
        assert run([*args, "--no-progress", *db]) == 0
    fit = ["embeddings", "fit-adapter", "--old", "minilm", "--new", "e5", "--queries", str(queries), "--pairs", "24"]
    assert run([*fit, *db]) == 0
    assert run(["embeddings", "search", "wing flutter", "--query-model", "e5", *db]) == 0  # through the adapter
    capsys.readouterr()
    assert run(["embeddings", "adapter", "retire", "1", "--actor", "carol", "--reason", "e5 index serves", *db]) == 0
    out = capsys.readouterr().out
    assert "adapter #1" in out and "retired" in out and "still serves" in out
    assert run(["embeddings", "search", "wing flutter", "--query-model", "e5", *db]) == 2  # no bridge any more
    assert "not comparable" in capsys.readouterr().err
    # without --query-model the query is embedded by the serving index's own model
    assert run(["embeddings", "search", "wing flutter", *db]) == 0
    assert "index all-MiniLM-L6-v2@" in capsys.readouterr().out
    st = tmp_path / "st.json"
    assert run(["embeddings", "status", "--json", str(st), *db]) == 0
    assert json.loads(st.read_text())["adapters"] == []  # no technical debt left
    with open_store(db[1]) as s:
        (retired,) = list_events(s, kind_prefix="embeddings.adapter.retired")
    assert (retired.actor, retired.reason, retired.payload["id"]) == ("carol", "e5 index serves", 1)
    assert run(["embeddings", "adapter", "retire", "1", *db]) == 2
    assert "already retired" in capsys.readouterr().err
    assert run(["embeddings", "adapter", "retire", "7", *db]) == 2
    assert "no adapter #7" in capsys.readouterr().err


def test_spec_mode_and_user_errors(tmp_path, small_corpus, capsys):
    spec = tmp_path / "migration.yaml"
    base: dict = {}  # an embedding migration's spec needs nothing but its `embeddings:` section
    spec.write_text(
        yaml.safe_dump(
            {
                **base,
                "embeddings": {"incumbent": "minilm", "candidate": "e5", "corpus": small_corpus.name, "treshold": 0.8},
            }
        )
    )
    db = ["--db", f"sqlite:///{tmp_path / 'spec.db'}"]
    assert run(["embeddings", "status", "--spec", str(spec), *db]) == 2
    assert "field 'embeddings.treshold' is not a known key" in capsys.readouterr().err
    spec.write_text(
        yaml.safe_dump({**base, "embeddings": {"incumbent": "minilm", "candidate": "e5", "corpus": small_corpus.name}})
    )
    # the corpus path is relative to the spec; 'old' means the spec's incumbent
    assert run(["embeddings", "reembed", "--spec", str(spec), "--to", "old", "--limit", "4", "--no-progress", *db]) == 0
    assert "4 of 24" in capsys.readouterr().out
    assert run(["embeddings", "switch", "--spec", str(spec), "--to", "old", *db]) == 2
    assert "incomplete (4 of 24 documents" in capsys.readouterr().err
    assert run(["embeddings", "reembed", "--to", "nomic-embed", "--corpus", str(small_corpus), *db]) == 2
    assert "unknown embedding model 'nomic-embed'" in capsys.readouterr().err
    assert run(["embeddings", "compare", "--old", "minilm", "--new", "e5", *db]) == 2
    assert "--queries is required" in capsys.readouterr().err
    spec.write_text(yaml.safe_dump({"embedings": {"incumbent": "minilm"}}))  # misspelled section
    assert run(["embeddings", "status", "--spec", str(spec), *db]) == 2
    assert "'embedings' is not a known top-level key" in capsys.readouterr().err
    spec.write_text(yaml.safe_dump({"incumbent": "gpt-a", "candidates": ["gpt-b"], "dimensions": {"correctness": {}}}))
    assert run(["embeddings", "status", "--spec", str(spec), *db]) == 2
    assert "needs the 'embeddings:' section" in capsys.readouterr().err
    bad_lease = ["embeddings", "reembed", "--to", "minilm", "--corpus", str(small_corpus), "--lease", "soon", *db]
    assert run(bad_lease) == 2
    assert "--lease" in capsys.readouterr().err
