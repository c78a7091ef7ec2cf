"""The pushdown (assessment.pushdown) builds the Python engine's count tables cell for cell.

The same records -- simulated with every feature the tables read (binary, ordinal, continuous and
multi-signal dimensions, failed calls, ``errors: exclude``, two segment fields, weights, several
annotators and settled answers, store labels) and the bundled XSTest demo data -- go through
``service.prepare`` (Python records) and through the pushdown from a JSONL file, a Parquet file,
a SQLite store and a PostgreSQL store; tables, counts and the decision must be identical.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from changeover.assessment import assess, pushdown
from changeover.assessment.sampling import SamplingPolicy
from changeover.assessment.service import Prepared, prepare
from changeover.config import load_spec
from changeover.errors import ChangeoverError
from changeover.records import read_records
from changeover.store import open_store
from changeover.store.responses import import_file, load_records_counted, merge_labels

pytestmark = pytest.mark.filterwarnings("ignore::changeover.assessment.ConvergenceWarning")  # short fits, on purpose

DEMO = Path(__file__).resolve().parents[2] / "src/changeover/data/xstest/records.jsonl.gz"

SPEC = """
incumbent: old
candidates: [new, other]
segment_by: [region, kind]
traffic: {monthly_interactions: 1000000}
confidence: 0.95
seed: 3
dimensions:
  correctness: {signal: correct, margin: 0.03}
  style: {signal: style, levels: 5, margin: 0.05, required: false}
  fluency: {signal: score, bins: 3, margin: 0.05, required: false, errors: exclude}
  safety: {signals: [safe, score], margin: 0.05, required: false}
"""


DECIDE = """
incumbent: old
candidates: [new]
segment_by: [region]
traffic: {monthly_interactions: 1000000}
seed: 3
dimensions:
  correctness: {signal: correct, margin: 0.03}
  style: {signal: style, levels: 5, margin: 0.05, required: false}
"""
FAST: dict[str, Any] = {
    "draws": 100,
    "warmup": 100,
    "chains": 2,
    "next_count": 20,
    "policy": SamplingPolicy(extend=False),
}


def same_decision(spec: Any, prepared: Prepared, records: list[Any]) -> None:
    """The decision from the pushdown's tables is the Python engine's, to the last digit (same seed)."""
    a = assess(spec, [], prepared=prepared, **FAST).to_json()
    b = assess(spec, records, **FAST).to_json()
    assert a == b
    assert b["next_labels"]  # the ranked labels (from the carried items) are the Python engine's


def simulated_rows(n_items: int = 900, seed: int = 5) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_items):
        region, kind = ["emea", "na", "apac"][i % 3], ["chat", "code"][int(rng.random() < 0.3)]
        for model in ("old", "new", "other"):
            if (model == "other" and i % 17 == 0) or (model == "old" and i % 29 == 0):
                continue  # unpaired items
            row: dict[str, Any] = {"item": f"q{i:05d}", "model": model, "segment": {"region": region, "kind": kind}}
            signals: dict[str, Any] = {
                "correct": int(rng.random() < 0.7),
                "style": int(rng.integers(1, 6)),
                "score": round(float(rng.random()), 3),
                "safe": bool(rng.random() < 0.9),
            }
            if rng.random() < 0.05:
                signals["score"] = None
            row["signals"] = signals
            u = rng.random()
            if u < 0.04:
                row["error"] = "timeout"
            elif u < 0.06:
                row["response"] = "  \n"
            elif u < 0.5:
                row["response"] = "an answer"
            if i % 11 == 0:
                row["weight"] = 2.0
            if rng.random() < 0.08:
                row["labels"] = {"correctness": int(rng.random() < 0.7)}
                if rng.random() < 0.3:
                    row["labels"]["style"] = [1, 0]
                    row["label_by"] = {"style": ["ann", "settled:gold"]}
            rows.append(row)
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = []
    for r in rows:
        out = {k: v for k, v in r.items() if not isinstance(v, dict)}
        for head in ("segment", "signals", "labels", "label_by"):
            for k, v in (r.get(head) or {}).items():
                out[f"{head}.{k}"] = json.dumps(v) if isinstance(v, list) else v
        flat.append(out)
    columns = list(dict.fromkeys(k for r in flat for k in r))  # from_pylist would take the first row's keys only
    pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in flat]), path)
    return path


def pq_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def assert_same(a: Prepared, b: Prepared) -> None:
    assert a.segments == b.segments
    assert np.array_equal(a.shares, b.shares)
    assert a.error_rates == b.error_rates
    assert a.labels_in == b.labels_in
    assert list(a.comparisons) == list(b.comparisons)
    for key, ca in a.comparisons.items():
        cb = b.comparisons[key]
        ta, tb = ca.table, cb.table
        for name in ("seg", "a0", "a1", "known0", "known1", "pos0", "tot0", "pos1", "tot1", "n"):
            assert np.array_equal(getattr(ta, name), getattr(tb, name)), (key, name)
        assert (ta.segments, ta.levels, ta.annotators, ta.exact) == (tb.segments, tb.levels, tb.annotators, tb.exact)
        for name in ("votes0", "votes1"):
            va, vb = getattr(ta, name), getattr(tb, name)
            assert (va is None) == (vb is None) and (va is None or np.array_equal(va, vb)), (key, name)
        assert ca.scales == cb.scales, key
        assert (ca.labelled, ca.known_failures, ca.excluded, ca.scored) == (
            cb.labelled,
            cb.known_failures,
            cb.excluded,
            cb.scored,
        ), key
        assert ca.paired_items == cb.paired_items, key
        # every item pushdown carries sits in the cell the Python engine puts it in
        cell = dict(zip(cb.items, tb.cell_of_item, strict=True))
        assert all(cell[i] == c for i, c in zip(ca.items, ta.cell_of_item, strict=True)), key


def _spec(tmp_path: Path, text: str) -> Any:
    p = tmp_path / "migration.yaml"
    p.write_text(text)
    return load_spec(p)


@pytest.fixture
def spec(tmp_path: Path) -> Any:
    return _spec(tmp_path, SPEC)


@pytest.fixture
def decide(tmp_path: Path) -> Any:
    return _spec(tmp_path, DECIDE)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return simulated_rows()


def test_jsonl_tables_equal_python(spec: Any, rows: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "records.jsonl", rows)
    pushed = pushdown.from_file(spec, path)
    want = prepare(spec, read_records(path))
    assert_same(pushed.prepared, want)
    assert pushed.rows == len(rows)
    c = pushed.prepared.comparisons[("new", "fluency")]
    assert c.excluded != (0, 0) and c.known_failures == (0, 0)  # the features under test are exercised
    assert pushed.prepared.comparisons[("new", "style")].table.annotators == ("ann", "settled:gold")
    assert pushed.prepared.comparisons[("new", "safety")].scales.scales[1].kind == "continuous"
    assert len(pushed.prepared.segments) == 6
    assert any("GROUP BY" in s for s in pushed.statements)


def test_parquet_tables_and_decision_equal_python(
    spec: Any, decide: Any, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = write_parquet(tmp_path / "records.parquet", rows)
    records = read_records(path)
    assert {"error", "weight", "labels.style", "label_by.style"} <= set(pq_columns(path))
    assert_same(pushdown.from_file(spec, path, next_count=20).prepared, prepare(spec, records))
    same_decision(decide, pushdown.from_file(decide, path, next_count=20).prepared, records)


def test_store_labels_merged_into_a_file(spec: Any, rows: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "records.jsonl", rows)
    verdicts = {("q00003", "new", "correctness"): [("alice", 1)], ("q00004", "old", "style"): [("bob", 0)]}
    records = read_records(path)
    assert merge_labels(records, verdicts) == 2
    pushed = pushdown.from_file(spec, path, verdicts=verdicts)
    assert pushed.merged == 2
    assert_same(pushed.prepared, prepare(spec, records))


def test_demo_data_gzipped_jsonl(tmp_path: Path) -> None:
    from changeover import demo

    spec = demo.prepare(labels=120, seed=7).spec
    pushed = pushdown.from_file(spec, DEMO)
    assert_same(pushed.prepared, prepare(spec, read_records(DEMO)))
    with gzip.open(DEMO, "rt") as fh:
        assert pushed.rows == sum(1 for line in fh if json.loads(line)["model"] in spec.models)


def test_repeated_samples_are_left_to_python(spec: Any, rows: list[dict[str, Any]], tmp_path: Path) -> None:
    extra = dict(rows[0], sample=1)
    path = write_jsonl(tmp_path / "records.jsonl", [*rows, extra])
    with pytest.raises(pushdown.Unsupported, match="repeated samples"):
        pushdown.from_file(spec, path)


def test_an_error_is_the_python_engines(spec: Any, rows: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "records.jsonl", [*rows, rows[0]])
    with pytest.raises(pushdown.Unsupported, match="twice"):
        pushdown.from_file(spec, path)


def _store_case(spec: Any, decide: Any, url: str, rows: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "records.jsonl", rows)
    with open_store(url) as store:
        import_file(store, path)
        from changeover.store.events import now
        from changeover.store.schema import labels

        with store.engine.begin() as conn:
            for item, model, dim, value, who in (
                ("q00003", "new", "correctness", 1, "alice"),
                ("q00010", "old", "style", 0, "bob"),
                ("q00006", "new", "tone", 1, "carol"),  # a dimension the spec does not read: merged, not counted
                ("nope", "new", "correctness", 1, "dave"),  # a response the store does not hold: not merged
            ):
                conn.execute(
                    labels.insert().values(
                        item=item, model=model, dimension=dim, value=value, annotator=who, created_at=now()
                    )
                )
        records, merged = load_records_counted(store, spec.models)
        pushed = pushdown.from_store(spec, store, next_count=20)
        assert pushed.merged == merged == 3
        assert pushed.records == []  # the labelled items' verdicts were counted in SQL, no response read back
        assert_same(pushed.prepared, prepare(spec, records))
        again = pushdown.from_store(spec, store, next_count=20)  # the temporary tables are gone: it runs again
        assert_same(again.prepared, pushed.prepared)
        records, _ = load_records_counted(store, decide.models)
        same_decision(decide, pushdown.from_store(decide, store, next_count=20).prepared, records)


def test_store_tables_and_decision_equal_python(
    spec: Any, decide: Any, rows: list[dict[str, Any]], tmp_path: Path, store_url: str
) -> None:
    _store_case(spec, decide, store_url, rows, tmp_path)


@pytest.mark.parametrize("prefix", [1, 150])
def test_store_first_items_beyond_the_prefix(
    spec: Any, rows: list[dict[str, Any]], tmp_path: Path, store_url: str, monkeypatch: Any, prefix: int
) -> None:
    """The first items of each cell come from a prefix of the items in item order; the cells it leaves
    short (all of them with a prefix of 1, the rare ones with 150) are ranked by the window query."""
    path = write_jsonl(tmp_path / "records.jsonl", rows)
    with open_store(store_url) as store:
        import_file(store, path)
        records, _ = load_records_counted(store, spec.models)
        whole = pushdown.from_store(spec, store, next_count=20).prepared  # the prefix holds every item
        monkeypatch.setattr(pushdown, "_PREFIX", prefix)
        part = pushdown.from_store(spec, store, next_count=20).prepared
    assert_same(part, prepare(spec, records))
    for key, comparison in whole.comparisons.items():
        assert part.comparisons[key].items == comparison.items, key  # the same first items of every cell


def test_store_refusals_are_the_python_engines(spec: Any, rows: list[dict[str, Any]], tmp_path: Path) -> None:
    """Without a ``co_rec`` table the store's checks read ``co_items``: a second answer of one model to
    an item, a spec model with no records and repeated samples still leave it to the Python engine."""
    twice = dict(rows[0], signals={**rows[0].get("signals", {}), "correct": 1 - rows[0]["signals"]["correct"]})
    cases = {
        "twice": [*rows, twice],
        "no records": [r for r in rows if r["model"] != "other"],
        "repeated samples": [*rows, dict(rows[1], sample=1)],
    }
    for i, (reason, data) in enumerate(cases.items()):
        with open_store(f"sqlite:///{tmp_path / f'{i}.db'}") as store:
            import_file(store, write_jsonl(tmp_path / f"{i}.jsonl", data))
            with pytest.raises(pushdown.Unsupported, match=reason):
                pushdown.from_store(spec, store)


def test_store_reads_no_response_back(
    spec: Any, decide: Any, rows: list[dict[str, Any]], tmp_path: Path, store_url: str, monkeypatch: Any
) -> None:
    """Every response labelled (by several annotators, a settled answer among them, on failed calls too):
    the tables are the Python engine's, yet the pushdown loads no record; and with one verdict per
    response what Python receives -- count rows and a few statistics -- is far fewer rows than the
    labelled responses: its memory does not grow with them."""

    rng = np.random.default_rng(11)
    several, single = [], []
    for r in rows:
        votes = [int(v) for v in rng.random(int(rng.integers(1, 4))) < 0.7]
        names = ["ann", "bea", "settled:gold"][: len(votes)] if rng.random() < 0.5 else []
        by = {"correctness": names} if names else {}
        several.append(dict(r, labels={"correctness": votes, "style": votes[:1]}, label_by=by))
        single.append(dict(r, labels={"correctness": votes[:1]}, label_by={}))

    fetched: list[int] = []
    real_run = pushdown.SqlRunner.run

    def counted(self: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        got = real_run(self, sql, params)
        fetched.append(len(got))
        return got

    for name, data, used in (("several", several, spec), ("single", single, decide)):
        with open_store(store_url.replace("changeover.db", f"{name}.db")) as store:
            if store.dialect == "postgresql":
                from changeover.store.schema import responses as table

                with store.engine.begin() as conn:
                    conn.execute(table.delete())
            import_file(store, write_jsonl(tmp_path / f"{name}.jsonl", data))
            records, _ = load_records_counted(store, used.models)
            with monkeypatch.context() as m:
                m.setattr(pushdown.SqlRunner, "run", counted)
                fetched.clear()
                pushed = pushdown.from_store(used, store, next_count=0)
        want = prepare(used, records)
        assert_same(pushed.prepared, want)
        assert pushed.records == []  # no response came back as a Record
        answers = sum(1 for r in data if r["model"] in used.models)
        assert want.labels_in >= answers * (2 if name == "several" else 1)
        # what Python received: count rows and a few statistics. One verdict per response: far fewer rows
        # than labelled responses. Several annotators: a row per (comparison, cell, votes), each comparison
        # fewer than half its labelled responses here (random votes of four annotators rarely repeat)
        bound = answers / 4 if name == "single" else len(pushed.prepared.comparisons) * answers / 2
        assert sum(fetched) < bound, (name, sum(fetched), answers)
        if name == "several":
            annotators = pushed.prepared.comparisons[("new", "correctness")].table.annotators
            assert annotators == ("", "ann", "bea", "settled:gold")


def test_store_settled_answers_that_disagree_are_the_python_engines(
    spec: Any, rows: list[dict[str, Any]], tmp_path: Path, store_url: str
) -> None:
    from changeover.errors import DataError

    clash = [dict(r) for r in rows]
    clash[3] = dict(clash[3], labels={"correctness": [1, 0]}, label_by={"correctness": ["settled:a", "settled:b"]})
    clash[3].pop("error", None)
    clash[3]["response"] = "an answer"
    with open_store(store_url) as store:
        import_file(store, write_jsonl(tmp_path / "clash.jsonl", clash))
        with pytest.raises(DataError, match="two settled answers disagree"):
            prepare(spec, load_records_counted(store, spec.models)[0])
        with pytest.raises(pushdown.Unsupported, match="two settled answers disagree"):
            pushdown.from_store(spec, store)


BLANKS = ["", " \t\n", "\u00a0", "\u2003\u3000", "\x1c\x85", "\u200b", "ok \u00a0"]  # the last two are answers


def test_whitespace_only_answers_fail_as_in_the_python_engine(
    spec: Any, rows: list[dict[str, Any]], tmp_path: Path, store_url: str
) -> None:
    """str.strip()'s Unicode whitespace: an answer of only no-break or ideographic spaces is a failed call
    in every engine (a zero-width space is not whitespace to Python, so it is an answer in every engine)."""
    from changeover.assessment.pushdown import WHITESPACE

    assert {chr(c) for c in WHITESPACE} == {chr(c) for c in range(0x110000) if chr(c).isspace()}
    odd = [dict(r, response=BLANKS[i % len(BLANKS)]) if i % 5 == 0 else r for i, r in enumerate(rows)]
    path = write_jsonl(tmp_path / "records.jsonl", odd)
    want = prepare(spec, read_records(path))
    base = prepare(spec, read_records(write_jsonl(tmp_path / "base.jsonl", rows)))
    errors = [sum(e.errors for e in p.error_rates.values()) for p in (base, want)]
    assert errors[1] > errors[0]  # the blank answers are failures to the Python engine
    assert_same(pushdown.from_file(spec, path).prepared, want)
    assert_same(pushdown.from_file(spec, write_parquet(tmp_path / "records.parquet", odd)).prepared, want)
    with open_store(store_url) as store:
        import_file(store, path)
        assert_same(pushdown.from_store(spec, store, next_count=20).prepared, want)


def test_store_verdicts_merged_into_a_file_are_counted_as_python_counts_them(
    spec: Any, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Verdicts on a dimension the spec does not read, on a model it does not compare, on a response the
    file does not hold: ``merged`` is merge_labels' count, whichever engine reads the file."""
    extra = [dict(rows[0], model="legacy")]  # a model the spec does not compare
    for path in (write_jsonl(tmp_path / "r.jsonl", [*rows, *extra]), write_parquet(tmp_path / "r.parquet", rows)):
        verdicts = {
            ("q00003", "new", "correctness"): [("alice", 1)],
            ("q00003", "new", "tone"): [("alice", 1), ("bob", 0)],  # not a dimension of the spec
            (rows[0]["item"], "legacy", "correctness"): [("carol", 1)],
            ("nope", "new", "correctness"): [("dave", 1)],  # no such response
        }
        want = merge_labels(read_records(path), verdicts)
        assert want == (4 if path.suffix == ".jsonl" else 3)
        assert pushdown.from_file(spec, path, verdicts=verdicts).merged == want


def test_a_blank_item_or_segment_is_left_to_the_python_engine(
    spec: Any, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The Python engine refuses these rows (an unlabelled one: the labelled are validated as records), naming
    them; the DuckDB engine leaves them to it, never a segment '' or '{"x":1}' of them."""
    for odd in (
        {"item": " "},
        {"segment": {"region": "", "kind": "chat"}},
        {"latency_ms": "fast"},
        {"tokens_in": -5},
        {"cost_usd": float("inf")},
        {"segment": {"region": "emea", "kind": {"x": 1}}},  # a value that is no text, of any segment key
        {"segment": {"region": "emea", "kind": "chat", "tier": True}},
    ):
        i = next(k for k, r in enumerate(rows) if not r.get("labels"))
        bad = [*rows[:i], dict(rows[i], **odd), *rows[i + 1 :]]
        paths = [write_jsonl(tmp_path / "b.jsonl", bad)]
        if not any(isinstance(v, dict) for v in odd.get("segment", {}).values()):  # Parquet's types are one per column
            paths.append(write_parquet(tmp_path / "b.parquet", bad))
        for path in paths:
            with pytest.raises(ChangeoverError):
                prepare(spec, read_records(path))
            with pytest.raises(pushdown.Unsupported):
                pushdown.from_file(spec, path)


def test_an_annotator_with_a_backslash_in_the_name(
    spec: Any, rows: list[dict[str, Any]], tmp_path: Path, store_url: str
) -> None:
    """The SQL shown spells parameters out: a name is a literal there, backslashes and quotes too."""
    from changeover.store.events import now
    from changeover.store.schema import labels

    path = write_jsonl(tmp_path / "records.jsonl", rows)
    with open_store(store_url) as store:
        import_file(store, path)
        with store.engine.begin() as conn:
            conn.execute(
                labels.insert().values(
                    item="q00003",
                    model="new",
                    dimension="correctness",
                    value=1,
                    annotator="CORP\\d'ave",
                    created_at=now(),
                )
            )
        records, _ = load_records_counted(store, spec.models)
        pushed = pushdown.from_store(spec, store, next_count=20)
        assert_same(pushed.prepared, prepare(spec, records))
        assert any("'CORP\\d''ave'" in s for s in pushed.statements)
