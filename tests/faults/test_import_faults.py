"""`changeover import` into a store that is full, read-only, refusing a statement or down.

The store must be left exactly as it was (one transaction per file: no record
and no import-log row of the failed file), and the user must get one clear line
and exit 2. SQLite sits on a tiny tmpfs (filled, or remounted read-only);
PostgreSQL is this suite's own cluster, with a trigger failing mid-import, a
read-only database, or the server stopped.

What the suite found first: nothing was ever half-written, but a full disk, a
failing statement and a read-only PostgreSQL ended in an ~80-line traceback
that printed the records being inserted, exit 1. The import now runs in one
transaction with the import log and turns the database's refusal into one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.faults.record import note

from changeover.store import open_store
from changeover.store.schema import imports, responses

pytestmark = pytest.mark.postgres


def write_records(path: Path, n: int, text: int = 500) -> Path:
    rows = (
        {"item": f"i{i}", "model": "old", "segment": {"region": "emea"}, "signals": {"ok": 1}, "response": "x" * text}
        for i in range(n)
    )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def changeover_import(path: Path, db: str) -> subprocess.CompletedProcess:
    """The real command in its own process: exit code and the exact lines a user sees."""
    cmd = [sys.executable, "-c", "from changeover.cli import main; main()", "import", str(path), "--db", db]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def contents(db: str) -> tuple[int, int]:
    with open_store(db) as store, store.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(responses)).scalar_one(),
            conn.execute(select(func.count()).select_from(imports)).scalar_one(),
        )


@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A 256 KiB tmpfs (root only: CI runs the suite as root)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            raise RuntimeError("the import fault tests mount a tmpfs: run them as root")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def seeded(db: str, tmp_path: Path) -> tuple[int, int]:
    done = changeover_import(write_records(tmp_path / "small.jsonl", 10), db)
    assert done.returncode == 0, done.stderr
    return contents(db)


def test_sqlite_disk_full_leaves_the_store_as_it_was(tiny_fs, tmp_path):
    db = f"sqlite:///{tiny_fs / 'c.db'}"
    before = seeded(db, tmp_path)
    done = changeover_import(write_records(tmp_path / "big.jsonl", 2000), db)  # ~1.2 MB into 256 KiB
    assert done.returncode != 0
    assert contents(db) == before == (10, 1)  # nothing half-written, and the store still opens
    note("import.sqlite_full", exit=done.returncode, stderr_lines=len(done.stderr.splitlines()))


def test_sqlite_disk_full_is_a_clear_error(tiny_fs, tmp_path):
    db = f"sqlite:///{tiny_fs / 'c.db'}"
    done = changeover_import(write_records(tmp_path / "big.jsonl", 2000), db)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) <= 2 and "full" in done.stderr


def test_sqlite_read_only_is_a_clear_error(tiny_fs, tmp_path):
    db = f"sqlite:///{tiny_fs / 'c.db'}"
    before = seeded(db, tmp_path)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    done = changeover_import(write_records(tmp_path / "more.jsonl", 50), db)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "cannot open the store" in done.stderr
    subprocess.run(["mount", "-o", "remount,rw", str(tiny_fs)], check=True)
    assert contents(db) == before
    note("import.sqlite_read_only", exit=done.returncode, stderr_lines=len(done.stderr.splitlines()))


def failing_trigger(pg_cluster, db_url: str) -> None:
    """A statement that fails part-way through the import (row i1500 of 2000)."""
    name = db_url.rsplit("/", 1)[1]
    pg_cluster.sql(
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.item = 'i1500' THEN "
        "RAISE EXCEPTION 'quota exceeded'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        name,
    )
    pg_cluster.sql("CREATE TRIGGER refuse BEFORE INSERT ON responses FOR EACH ROW EXECUTE FUNCTION refuse()", name)


def read_only(pg_cluster, db_url: str) -> None:
    pg_cluster.sql(f'ALTER DATABASE "{db_url.rsplit("/", 1)[1]}" SET default_transaction_read_only = on')


@pytest.mark.parametrize("fault", [failing_trigger, read_only], ids=["failing-statement", "read-only"])
def test_postgres_refusing_the_import_leaves_it_as_it_was(pg_cluster, pg_db, tmp_path, fault):
    before = seeded(pg_db, tmp_path)
    fault(pg_cluster, pg_db)
    done = changeover_import(write_records(tmp_path / "big.jsonl", 2000), pg_db)
    assert done.returncode != 0
    assert contents(pg_db) == before == (10, 1)
    note(
        f"import.pg_{fault.__name__}",
        exit=done.returncode,
        stderr_lines=len(done.stderr.splitlines()),
    )


@pytest.mark.parametrize("fault", [failing_trigger, read_only], ids=["failing-statement", "read-only"])
def test_postgres_refusing_the_import_is_a_clear_error(pg_cluster, pg_db, tmp_path, fault):
    contents(pg_db)  # creates the tables the trigger goes on
    fault(pg_cluster, pg_db)
    done = changeover_import(write_records(tmp_path / "big.jsonl", 2000), pg_db)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) <= 2


def test_postgres_down_is_a_clear_error(pg_cluster, pg_db, tmp_path):
    write_records(tmp_path / "r.jsonl", 10)
    pg_cluster.stop("fast")
    done = changeover_import(tmp_path / "r.jsonl", pg_db)
    pg_cluster.start()
    assert done.returncode == 2 and "Traceback" not in done.stderr and "Connection refused" in done.stderr
    assert contents(pg_db) == (0, 0)
    note("import.pg_down", exit=done.returncode, stderr_lines=len(done.stderr.splitlines()))
