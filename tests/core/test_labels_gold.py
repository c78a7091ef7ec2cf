"""Gold verdicts and the store's labels: one reading for `changeover assess` / `report`, the app's live fit and
the rollout's p_regression (a gold verdict checks its annotator beside the settled answer, never decides)."""

from __future__ import annotations

import inspect
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import insert

from changeover.cli.common import load_assessment_records
from changeover.config import load_spec, spec_from_dict
from changeover.records import Record
from changeover.store import Store, open_store
from changeover.store.events import now
from changeover.store.responses import GOLD, REVIEW, add_records, current_labels, current_verdicts, load_records
from changeover.store.schema import labels

SPEC = {
    "incumbent": "legacy",
    "candidates": ["cand"],
    "dimensions": {"correctness": {"signal": "correctness", "margin": 0.05}},
}


def label(store: Store, item: str, model: str, value: int, who: str, **kw: object) -> int:
    """One row of the labels table on ``correctness`` (status / source / supersedes in ``kw``)."""
    row = {"status": "label", "source": "app", "dimension": "correctness", **kw}
    with store.engine.begin() as conn:
        res = conn.execute(
            insert(labels).values(
                item=item, model=model, value=value, annotator=who, created_at=now(), client_id=uuid.uuid4().hex, **row
            )
        )
        return int(res.inserted_primary_key[0])


def gold_project(tmp_path: Path, url: str, gold_file: bool = True) -> tuple[Store, Path]:
    """Four items answered by both models; bob's gold verdict (0) on g1/cand, whose gold answer is 1."""
    tmp_path.mkdir(exist_ok=True)
    store = open_store(url)
    from changeover.labeling.tables import ensure_tables

    ensure_tables(store)
    add_records(
        store,
        [Record(f"g{i}", m, signals={"correctness": i % 2}) for i in range(1, 5) for m in ("legacy", "cand")],
    )
    label(store, "g1", "cand", 0, "bob", status=GOLD)
    (tmp_path / "gold.csv").write_text("item,model,dimension,value\ng1,cand,correctness,1\n", encoding="utf-8")
    raw = dict(SPEC)
    if gold_file:
        raw["labeling"] = {"gold": {"answers": "gold.csv"}}
    spec_path = tmp_path / "migration.yaml"
    spec_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return store, spec_path


def by_response(records: list[Record]) -> dict[tuple[str, str], list[tuple[str, int]]]:
    return {
        (r.item, r.model): list(zip(r.annotators("correctness"), r.labels["correctness"], strict=True))
        for r in records
        if r.labels.get("correctness")
    }


def test_a_gold_verdict_without_its_answer_is_not_a_label(tmp_path, sqlite_url):
    store, _ = gold_project(tmp_path, sqlite_url)
    with store:
        assert current_labels(store) == {}
        assert current_verdicts(store) == {}  # was {('g1', 'cand', 'correctness'): [('bob', 0)]}
        assert by_response(load_records(store)) == {}
        answers = {("g1", "cand"): {"correctness": 1}}
        assert current_verdicts(store, answers) == {("g1", "cand", "correctness"): [("settled:gold", 1), ("bob", 0)]}


def test_assess_loads_the_gold_file_answer_beside_the_gold_verdict(tmp_path, sqlite_url):
    store, spec_path = gold_project(tmp_path, sqlite_url)
    store.dispose()
    spec = load_spec(spec_path)
    recs, merged, _ = load_assessment_records(spec, None, sqlite_url)
    assert by_response(recs) == {("g1", "cand"): [("settled:gold", 1), ("bob", 0)]} and merged == 2
    # the same store labels merged into a records file
    from changeover.records import write_records

    write_records([Record(r.item, r.model, signals=dict(r.signals)) for r in recs], tmp_path / "r.jsonl")
    from_file, merged, _ = load_assessment_records(spec, tmp_path / "r.jsonl", sqlite_url)
    assert by_response(from_file) == by_response(recs)
    # a spec without a gold file: bob's gold verdict has no answer beside it and is left out, not a label
    store, plain = gold_project(tmp_path / "plain", f"sqlite:///{tmp_path / 'plain.db'}", gold_file=False)
    store.dispose()
    recs, merged, _ = load_assessment_records(load_spec(plain), None, f"sqlite:///{tmp_path / 'plain.db'}")
    assert by_response(recs) == {} and merged == 0


def test_the_app_fits_on_what_assess_reads(tmp_path, sqlite_url, monkeypatch):
    from changeover.labeling import LabelingService
    from changeover.labeling import service as service_module

    store, spec_path = gold_project(tmp_path, sqlite_url)
    spec = load_spec(spec_path)
    seen: list[list[Record]] = []

    class Fitted(Exception):
        pass

    def capture(spec, cfg, records, catalogue, dimensions):  # the live fit's input, then stop
        seen.append(records)
        raise Fitted

    monkeypatch.setattr(service_module, "assess_snapshot", capture)
    with store:
        with pytest.raises(Fitted):
            LabelingService(store, spec).refresher.refresh(True)
    recs, _, _ = load_assessment_records(spec, None, sqlite_url)
    assert by_response(seen[0]) == by_response(recs) == {("g1", "cand"): [("settled:gold", 1), ("bob", 0)]}


def test_p_regression_reads_the_stored_labels_as_assess_does(tmp_path, sqlite_url):
    from changeover.assessment.annotators import annotator_votes
    from changeover.rollout.measure import Window
    from changeover.rollout.regression import window_records
    from changeover.shadowlog.answers import Answer, Pair
    from changeover.shadowlog.export import pair_records
    from changeover.store.responses import merge_store_labels

    at = datetime(2026, 11, 23, tzinfo=UTC)

    def answer(i: int, model: str, role: str) -> Answer:
        return Answer(f"r{i}", model, role, "default", None, at, 0, 200, None, 100.0, None, 10, 10, None, False, "ok")

    window = Window.of([], [], [Pair(answer(i, "old", "served"), answer(i, "new", "mirror")) for i in range(3)])
    spec = spec_from_dict(
        {"incumbent": "old", "candidates": ["new"], "dimensions": {"correctness": {"signal": "equivalent"}}}
    )
    store = open_store(sqlite_url)
    from changeover.labeling.tables import ensure_tables

    ensure_tables(store)
    with store:
        label(store, "r0", "new", 1, "ana")
        label(store, "r0", "new", 0, "bob")
        first = label(store, "r1", "new", 0, "cy")
        label(store, "r1", "new", 1, "admin", source=REVIEW, supersedes=first)  # the admin settles r1
        label(store, "r2", "new", 0, "bob", status=GOLD)  # a gold check with no answer: not a label
        got = window_records(store, spec, window)
        assessed = pair_records(window.pairs)
        merge_store_labels(store, assessed)
    assert (
        by_response(got)
        == by_response(assessed)
        == {
            ("r0", "new"): [("ana", 1), ("bob", 0)],
            ("r1", "new"): [("settled:admin", 1)],
        }
    )
    pairs = lambda recs: [(recs[k], recs[k + 1]) for k in range(0, len(recs), 2)]  # noqa: E731
    table, same = annotator_votes(pairs(got), "correctness"), annotator_votes(pairs(assessed), "correctness")
    assert table is not None and same is not None
    assert table.names == same.names == ("ana", "bob", "settled:admin") and (table.votes == same.votes).all()


def test_the_status_names_have_one_definition_and_gold_verdicts_is_in_force():
    from changeover.labeling import gold, resolve
    from changeover.store import responses

    assert gold.GOLD is responses.GOLD and resolve.REVIEW is responses.REVIEW
    for module in (gold, resolve):
        source = inspect.getsource(module)
        assert 'GOLD = "gold"' not in source and 'REVIEW = "review"' not in source
    assert "_Relabelled" not in inspect.getsource(gold)

    class Row:
        def __init__(self, id: int, value: int | None, status: str, supersedes: int | None = None, who: str = "bob"):
            self.id, self.value, self.status, self.supersedes = id, value, status, supersedes
            self.item, self.model, self.dimension, self.annotator, self.source = "i", "m", "d", who, "app"

    rows = [Row(1, 0, GOLD), Row(2, 1, GOLD, supersedes=1), Row(3, 1, "label", who="ana"), Row(4, None, "skip")]
    assert {k: r.id for k, r in gold.gold_verdicts(rows).items()} == {("i", "m", "d", "bob"): 2}
    assert gold.gold_verdicts(rows) == responses.in_force(rows, status=GOLD)
