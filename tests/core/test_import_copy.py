"""`changeover import` through COPY (PostgreSQL) and the encoded executemany (SQLite) stores what the
row-by-row path stored: the same rows, the same fingerprints, the same decision; a bad line stores nothing.

The reference is the path import used before (``records.read_records`` -> ``Record`` ->
``responses.add_records``): every row of a file with plain rows and every kind of row the fast path
hands to the validator (text signals, float levels, a label list of one, ``label_by``, whole-number
latencies, a JSON object as response, extras, nulls, empty mappings, tabs, backslashes and non-ASCII
text, duplicates within the file) must come back from both stores exactly as the reference stored it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from changeover import cli
from changeover.assessment import assess, pushdown
from changeover.assessment.sampling import SamplingPolicy
from changeover.config import load_spec
from changeover.errors import RecordsError
from changeover.records import read_records, record_from_dict
from changeover.store import bulk, ingest, open_store
from changeover.store import responses as responses_module
from changeover.store.ingest import stored_record, stored_rows
from changeover.store.responses import add_records, import_file, load_records
from changeover.store.schema import imports, responses

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings("ignore::changeover.assessment.ConvergenceWarning")]

ODD: list[dict[str, Any]] = [
    {"item": "o1", "model": "old", "signals": {"correct": "0.7", "flag": "true"}},
    {"item": "o2", "model": "old", "signals": {"correct": 2.0, "nan": float("nan")}, "labels": {"correctness": [1]}},
    {"item": "o3", "model": "new", "labels": {"correctness": [1, 0]}, "label_by": {"correctness": ["ann", "bob"]}},
    {"item": "o4", "model": "new", "labels": {"correctness": True, "style": None, "empty": []}, "latency_ms": 120},
    {"item": "o5", "model": "new", "response": {"text": "an object"}, "prompt": 'tab\there "quoted" \\ back'},
    {"item": "o6", "model": "old", "segment": {}, "signals": {}, "labels": {}, "error": None, "weight": 2},
    {"item": "o7", "model": "old", "segment": {"region": "日本"}, "extra": {"nested": [1, None]}, "sample": 0},
    {"item": "o8\tx\\y\nz", "model": "old", "segment": {"region": "emea"}, "trace_id": "t-8", "cost_usd": 0.25},
    {"item": 9, "model": "old", "signals": {"correct": True}, "tokens_in": "12", "sample": "0"},
    {"item": "o10", "model": "old", "labels": {"correctness": 1.0}, "label_by": {"correctness": ""}},
]


def plain(i: int, model: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "item": f"q{i:04d}",
        "model": model,
        "segment": {"region": ["emea", "na", "apac"][i % 3]},
        "signals": {"correct": (i * 7 + len(model)) % 2, "score": round(((i * 37) % 100) / 99, 4)},
        "response": f"answer {i} ünïcode",
    }
    if i % 11 == 0:
        row["labels"] = {"correctness": (i // 11) % 2}
    if i % 13 == 0:
        row["error"] = "timeout"
    if i % 5 == 0:
        row["latency_ms"] = 100 + i
    return row


def rows(n: int = 300) -> list[dict[str, Any]]:
    out = [plain(i, m) for i in range(n) for m in ("old", "new")]
    return out[:40] + ODD + out[40:] + [out[3], ODD[2]]  # the last two repeat earlier rows


def write(path: Path, data: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data), encoding="utf-8")
    return path


def stored(url: str) -> list[tuple[Any, ...]]:
    with open_store(url) as store, store.engine.connect() as conn:
        got = conn.execute(select(responses).order_by(responses.c.id)).all()
    return [(r.item, r.model, r.segment, r.signals, r.labels, r.payload, r.fingerprint, r.source) for r in got]


def test_every_row_is_encoded_as_the_record_it_validates_to(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", rows(60))
    for got, (line, raw) in zip(stored_rows(path), enumerate(json.loads(x) for x in path.open()), strict=True):
        want = stored_record(line + 1, record_from_dict(raw, "here"))
        assert got == want
        assert got.fingerprint == record_from_dict(raw, "here").fingerprint()


def test_copy_stores_what_the_row_path_stored(pg_url: str, tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", rows())
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    with open_store(reference) as store:
        add_records(store, read_records(path), str(path))
    sqlite = f"sqlite:///{tmp_path / 'new.db'}"
    with open_store(pg_url) as pg, open_store(sqlite) as lite:
        got_pg, got_lite = import_file(pg, path), import_file(lite, path)
    want = stored(reference)
    assert len(want) == 600 + len(ODD)  # the two repeated rows are not added again
    assert (got_pg.rows, got_pg.added) == (got_lite.rows, got_lite.added) == (len(want) + 2, len(want))
    assert stored(pg_url) == want
    assert stored(sqlite) == want


def test_reimport_and_overlap_add_only_new_rows(pg_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(bulk, "CHUNK", 50)  # several COPY chunks, some meeting stored rows
    data = rows(200)
    first = write(tmp_path / "first.jsonl", data[:150])
    with open_store(pg_url) as store:
        assert import_file(store, first).added == 150
        assert import_file(store, first).added == 0
        res = import_file(store, write(tmp_path / "all.jsonl", data))
        assert (res.rows, res.added) == (len(data), len(data) - 150 - 2)
        with store.engine.connect() as conn:
            fps = conn.execute(select(responses.c.fingerprint)).scalars().all()
    assert len(fps) == len(set(fps)) == len(data) - 2
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    with open_store(reference) as store:
        add_records(store, read_records(first), str(first))
        add_records(store, read_records(tmp_path / "all.jsonl"), str(tmp_path / "all.jsonl"))
    assert stored(pg_url) == stored(reference)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_bad_line_in_the_middle_stores_nothing(
    backend: str, pg_url: str, sqlite_url: str, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.setattr(bulk, "CHUNK", 50)  # chunks before the bad line are already copied when it is read
    url = pg_url if backend == "postgresql" else sqlite_url
    data = rows(100)
    good = write(tmp_path / "good.jsonl", data[:20])
    bad = write(tmp_path / "bad.jsonl", data[:150] + [{"item": "x", "model": "old", "labels": {"c": 7}}] + data[150:])
    assert cli.run(["import", str(good), "--db", url]) == 0
    before = stored(url)
    assert cli.run(["import", str(bad), "--db", url]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:151: field 'labels.c'" in err and "Traceback" not in err
    with pytest.raises(RecordsError, match=r"bad\.jsonl:151: field 'labels\.c'"):
        with open_store(url) as store:
            import_file(store, bad)
    assert stored(url) == before
    with open_store(url) as store, store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(imports)).scalar_one() == 1


SPEC = """
incumbent: old
candidates: [new]
segment_by: [region]
traffic: {monthly_interactions: 100000}
seed: 4
dimensions:
  correctness: {signal: correct, margin: 0.05}
"""


def test_same_decision_from_postgresql_and_sqlite(pg_url: str, sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(SPEC)
    spec = load_spec(tmp_path / "m.yaml")
    path = write(tmp_path / "r.jsonl", [plain(i, m) for i in range(200) for m in ("old", "new")])
    fast = {"draws": 60, "warmup": 60, "chains": 2, "next_count": 10, "policy": SamplingPolicy(extend=False)}
    decisions, tables, records = [], [], []
    for url in (pg_url, sqlite_url):
        with open_store(url) as store:
            import_file(store, path)
            records.append([r.to_dict() for r in load_records(store, spec.models)])
            decisions.append(assess(spec, load_records(store, spec.models), **fast).to_json())
            pushed = pushdown.from_store(spec, store, next_count=10)
            tables.append({k: (c.table.n.tolist(), c.items) for k, c in pushed.prepared.comparisons.items()})
    assert records[0] == records[1] and len(records[0]) == 400
    assert decisions[0] == decisions[1]
    assert decisions[0]["verdict"] in ("GO", "NO-GO", "NEED-LABELS")
    assert tables[0] == tables[1]


def indexes(url: str) -> list[str]:
    with open_store(url) as store, store.engine.connect() as conn:
        return sorted(conn.execute(text("SELECT indexdef FROM pg_indexes WHERE tablename = 'responses'")).scalars())


class Rebuilds(list[int]):
    """Rows each rebuild deleted (one entry per build), and ``drops``: how many times indexes were dropped."""

    drops = 0


def rebuilt(monkeypatch: Any) -> Rebuilds:
    """Make every import of more than 10 rows a rebuild one; returns the list of rows each rebuild deleted."""
    monkeypatch.setattr(bulk, "REBUILD_MIN", 10)
    monkeypatch.setattr(bulk, "CHUNK", 50)
    deleted = Rebuilds()
    build, drop = bulk._Indexes.build, bulk._Indexes.drop
    monkeypatch.setattr(bulk._Indexes, "build", lambda self, cur: deleted.append(build(self, cur)) or deleted[-1])

    def counted_drop(self: Any, cur: Any) -> None:
        deleted.drops += 1
        drop(self, cur)

    monkeypatch.setattr(bulk._Indexes, "drop", counted_drop)
    return deleted


def test_a_big_import_into_a_small_table_builds_the_indexes_after(
    pg_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """Indexes dropped, one COPY, indexes built again: the same rows as the row path, duplicates of the
    file and of stored rows dropped (the first kept), the indexes as they were."""
    deleted = rebuilt(monkeypatch)
    data = rows(100)
    first = write(tmp_path / "first.jsonl", data[:30])
    second = write(tmp_path / "second.jsonl", data)  # holds first's 30 rows and two repeats of its own
    with open_store(pg_url) as store:
        before = indexes(pg_url)
        assert import_file(store, first).added == 30
        assert deleted == [0]  # 30 rows into an empty table: rebuilt, nothing repeated
        res = import_file(store, second)
        assert deleted == [0, 32]
        assert (res.rows, res.added) == (len(data), len(data) - 32)
        assert import_file(store, second).added == 0  # the table holds as many rows: into the indexes
        assert deleted == [0, 32]
    assert indexes(pg_url) == before and any("UNIQUE" in d and "fingerprint" in d for d in before)
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    with open_store(reference) as store:
        add_records(store, read_records(first), str(first))
        add_records(store, read_records(second), str(second))
    assert stored(pg_url) == stored(reference)


def test_a_bad_line_of_a_rebuilding_import_leaves_rows_and_indexes(
    pg_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    deleted = rebuilt(monkeypatch)
    data = rows(100)
    with open_store(pg_url) as store:
        import_file(store, write(tmp_path / "good.jsonl", data[:12]))
        before, index_before = stored(pg_url), indexes(pg_url)
        bad = write(tmp_path / "bad.jsonl", data[:150] + [{"item": "x", "model": "old", "labels": {"c": 7}}])
        with pytest.raises(RecordsError, match=r"bad\.jsonl:151: field 'labels\.c'"):
            import_file(store, bad)
    assert deleted.drops == 2 and len(deleted) == 1  # both imports dropped the indexes; the bad one never built
    assert stored(pg_url) == before and indexes(pg_url) == index_before


@pytest.mark.parametrize("rebuild", [False, True])
def test_a_value_the_store_refuses_names_the_files_line(
    rebuild: bool, pg_url: str, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """A NUL in a JSON string (jsonb cannot hold it) or in an item (text cannot): the file's line (blank
    lines counted), not the COPY's or its chunk's row, and nothing stored."""
    if rebuild:
        rebuilt(monkeypatch)
    else:
        monkeypatch.setattr(bulk, "CHUNK", 50)
    data = rows(100)
    data[76]["prompt"] = "a \u0000 in a prompt"
    path = tmp_path / "nul.jsonl"

    def write_with_blanks() -> None:  # a blank line after rows 10 and 100: later rows are 1 and 2 lines on
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in data]
        path.write_text("".join(lines[:10] + ["\n"] + lines[10:100] + ["  \n"] + lines[100:]), encoding="utf-8")

    write_with_blanks()
    with open_store(pg_url) as store:
        with pytest.raises(
            RecordsError,
            match=r"nul\.jsonl:78: the store refused its prompt, response, reference, error or extra fields: ",
        ):
            import_file(store, path)
        data[76].pop("prompt")
        data[120]["item"] = "q\u0000"
        write_with_blanks()
        with pytest.raises(RecordsError, match=r"nul\.jsonl:123: the store refused this row: invalid byte sequence"):
            import_file(store, path)
    assert stored(pg_url) == []
    assert cli.run(["import", str(path), "--db", pg_url]) == 2
    err = capsys.readouterr().err
    assert "nul.jsonl:123" in err and "Traceback" not in err


def test_a_table_in_use_is_written_into_its_indexes_without_waiting(
    pg_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """Another session reading ``responses`` (a lock the rebuild would wait for): the import does not
    wait for it, it copies into the indexes."""
    deleted = rebuilt(monkeypatch)
    path = write(tmp_path / "r.jsonl", rows(60))
    with open_store(pg_url) as store:
        with store.engine.connect() as reader:
            reader.execute(select(func.count()).select_from(responses))  # holds ACCESS SHARE until rollback
            assert import_file(store, path).added == 130  # 60 items by 2 models, the 10 odd rows
            reader.rollback()
    assert deleted == [] and deleted.drops == 0
    assert len(stored(pg_url)) == 130


def test_a_writer_during_a_rebuilding_import_waits_for_it(pg_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    """While an import rebuilds the indexes, another writer (``add_records``: the judging worker, evaluate)
    waits for its commit, then stores only what is new: nothing half-written, no repeated fingerprint."""
    deleted = rebuilt(monkeypatch)
    monkeypatch.setattr(ingest, "BATCH", 50)
    data = rows(100)
    path = write(tmp_path / "r.jsonl", data)
    handed, go_on = threading.Event(), threading.Event()

    def paused(p: Path) -> Any:  # the file's batches, stopping after the first until go_on
        for i, batch in enumerate(ingest.stored_batches(p)):
            yield batch
            if i == 0:
                handed.set()
                assert go_on.wait(60)

    monkeypatch.setattr(responses_module, "stored_batches", paused)
    imported: list[Any] = []
    written: list[tuple[int, int]] = []
    others = [record_from_dict({"item": "judged-1", "model": "new"}, "t"), record_from_dict(data[5], "t")]
    with open_store(pg_url) as store:
        importer = threading.Thread(target=lambda: imported.append(import_file(store, path)))
        importer.start()
        assert handed.wait(60)  # the import holds the table, its indexes dropped
        writer = threading.Thread(target=lambda: written.append(add_records(store, others, "judging")))
        writer.start()
        deadline = time.monotonic() + 60
        with store.engine.connect() as conn:
            waiting = text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            while conn.execute(waiting).scalar_one() == 0:  # the writer is queued behind the import's lock
                assert time.monotonic() < deadline and writer.is_alive()
                conn.rollback()
                time.sleep(0.02)
        assert writer.is_alive() and not written
        go_on.set()
        importer.join(60)
        writer.join(60)
    assert deleted == [2] and imported[0].added == 210
    assert written == [(2, 1)]  # the file's record was stored by the import already
    fingerprints = [row[6] for row in stored(pg_url)]
    assert len(fingerprints) == len(set(fingerprints)) == 211


def test_a_role_that_may_only_insert_imports_into_the_indexes(pg_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    """A big import by a role that does not own ``responses`` (it may insert, not drop indexes): the rows
    go into the indexes, nothing fails."""
    deleted = rebuilt(monkeypatch)
    role = f"co_writer_{uuid.uuid4().hex[:8]}"
    with open_store(pg_url) as store, store.engine.begin() as conn:  # the schema, owned by the test's user
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO "{role}"'))
        conn.execute(text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
    try:
        as_writer = pg_url.replace("postgres@", f"{role}@", 1)
        with open_store(as_writer) as store:
            assert import_file(store, write(tmp_path / "r.jsonl", rows(60))).added == 130
        assert deleted == [] and len(stored(pg_url)) == 130
    finally:
        with open_store(pg_url) as store, store.engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def test_a_table_a_foreign_key_refers_to_keeps_its_indexes(pg_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    """Another table refers to ``responses`` (a feature's notes on a response): its keys cannot be dropped,
    so the big import goes into the indexes."""
    deleted = rebuilt(monkeypatch)
    with open_store(pg_url) as store:
        with store.engine.begin() as conn:
            conn.execute(text("CREATE TABLE response_notes (response_id bigint REFERENCES responses (id))"))
        assert import_file(store, write(tmp_path / "r.jsonl", rows(60))).added == 130
    assert deleted == [] and len(stored(pg_url)) == 130


def test_a_small_file_of_long_rows_is_not_taken_for_a_big_one(tmp_path: Path) -> None:
    """The rows are counted, not guessed from the first lines: 30 short rows then 30 of 20 KB are 60 rows."""
    data = rows(30)
    path = write(tmp_path / "r.jsonl", data[:30] + [dict(r, response="x" * 20_000) for r in data[:30]])
    assert ingest.rows_in(path) == 60
    path.write_text(path.read_text().rstrip("\n"))  # no newline after the last row
    assert ingest.rows_in(path) == 60
