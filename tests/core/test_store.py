"""The store on SQLite and a real PostgreSQL: atomic, idempotent imports; labels; flags and events."""

import json
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from changeover.errors import RecordsError, StoreError
from changeover.store import open_store
from changeover.store.events import list_events, record_event
from changeover.store.flags import get_flag, set_flag
from changeover.store.responses import count_responses, import_file, load_records
from changeover.store.schema import labels


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [
    {"item": f"q-{i}", "model": m, "segment": {"region": "emea"}, "signals": {"correctness": i % 2}}
    for i in range(50)
    for m in ("legacy", "cand")
]


def test_import_is_idempotent(store, tmp_path):
    path = _write(tmp_path / "r.jsonl", ROWS)
    first = import_file(store, path)
    again = import_file(store, path)
    assert (first.rows, first.added) == (100, 100)
    assert (again.rows, again.added, again.duplicates) == (100, 0, 100)
    assert count_responses(store) == 100


def test_bad_row_stores_nothing(store, tmp_path):
    import_file(store, _write(tmp_path / "ok.jsonl", ROWS[:10]))
    bad = ROWS[10:40] + [{"item": "x", "model": "legacy", "labels": {"correctness": 7}}] + ROWS[40:]
    with pytest.raises(RecordsError, match=r"bad.jsonl:31: field 'labels.correctness'"):
        import_file(store, _write(tmp_path / "bad.jsonl", bad))
    assert count_responses(store) == 10


def test_app_labels_merge_and_supersede(store, tmp_path):
    import_file(store, _write(tmp_path / "r.jsonl", ROWS[:4]))
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        first = conn.execute(
            insert(labels).values(
                item="q-0",
                model="legacy",
                dimension="correctness",
                value=0,
                annotator="ann",
                created_at=now,
                status="label",
                source="app",
            )
        ).inserted_primary_key[0]
        conn.execute(
            insert(labels).values(
                item="q-0",
                model="legacy",
                dimension="correctness",
                value=1,
                annotator="ann",
                created_at=now,
                supersedes=first,
                status="label",
                source="app",
            )
        )
        conn.execute(
            insert(labels).values(
                item="q-0",
                model="legacy",
                dimension="correctness",
                value=1,
                annotator="bob",
                created_at=now,
                status="label",
                source="app",
            )
        )
        conn.execute(
            insert(labels).values(
                item="q-0",
                model="cand",
                dimension="correctness",
                value=None,
                annotator="bob",
                created_at=now,
                status="skip",
                source="app",
            )
        )
    recs = {(r.item, r.model): r for r in load_records(store)}
    assert sorted(recs[("q-0", "legacy")].labels["correctness"]) == [1, 1]  # correction superseded the 0
    assert "correctness" not in recs[("q-0", "cand")].labels  # a skip is no verdict


def test_flags_compare_and_set_with_events(store):
    assert get_flag(store, "rollout") is None
    f1 = set_flag(store, "rollout", {"stage": 0}, actor="alice", reason="start", expect_version=0)
    f2 = set_flag(store, "rollout", {"stage": 1}, actor="bob", reason="advance", expect_version=1)
    assert (f1.version, f2.version) == (1, 2)
    with pytest.raises(StoreError, match="changed meanwhile"):
        set_flag(store, "rollout", {"stage": 9}, actor="eve", expect_version=1)
    assert get_flag(store, "rollout").value == {"stage": 1}
    record_event(store, "note", "rollout", "carol", "checked")
    events = list_events(store, subject="rollout")
    assert [(e.kind, e.actor) for e in events] == [("flag.set", "alice"), ("flag.set", "bob"), ("note", "carol")]
    assert events[1].payload["from"] == {"stage": 0} and events[1].payload["to"] == {"stage": 1}


def test_concurrent_flag_writers_never_lose_an_update(store_url):
    store = open_store(store_url)
    set_flag(store, "counter", 0, actor="init")
    errors = []

    def bump(n):
        s = open_store(store_url)
        done = 0
        while done < n:
            flag = get_flag(s, "counter")
            try:
                set_flag(s, "counter", flag.value + 1, actor="t", expect_version=flag.version)
                done += 1
            except StoreError:
                continue
            except Exception as exc:  # noqa: BLE001 - surfaced below
                errors.append(exc)
                return
        s.dispose()

    threads = [threading.Thread(target=bump, args=(10,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert get_flag(store, "counter").value == 30
    store.dispose()


def test_bad_url_is_a_clear_error():
    with pytest.raises(StoreError, match="cannot"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_many_processes_opening_a_fresh_store_at_once(store_url, tmp_path):
    """Replicas starting together must not race on CREATE TABLE."""
    import subprocess
    import sys

    code = (
        "import sys; from changeover.store import open_store; "
        "from changeover.store.schema import metadata; s = open_store(sys.argv[1]); "
        "s.ensure(*metadata.sorted_tables); print('ok')"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, store_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in results]
    assert all(out.strip() == "ok" for out, _ in results)
