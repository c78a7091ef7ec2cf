"""The log writer's batches: one statement per table on PostgreSQL storing exactly what the generic insert
stores, idempotent on both stores, a refused row lost alone, and an unwritable PostgreSQL waited out."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from sqlalchemy import Text, cast, create_engine, event, func, select, text
from tests.gateway.exchanges import exchange

from changeover.providers.deprecation import DeprecationNotice
from changeover.shadow.config import Upstream
from changeover.shadow.rows import RowMaker
from changeover.shadow.writer import LogWriter
from changeover.shadowlog.tables import contamination_ledger, shadow_log
from changeover.store import open_store

UPSTREAMS = {"old": Upstream(base_url="http://x/v1", input_per_mtok=5.0, output_per_mtok=15.0)}
MAKER = RowMaker(UPSTREAMS, {"new"})
AT = datetime(2026, 12, 1, 16, 34, 22, 448367, tzinfo=UTC)  # microseconds: read back exactly


def varied(prefix: str) -> list:
    """Exchanges with every kind of value a log row holds: unicode, nested JSON, NULLs, a deprecation."""
    exs = [
        exchange(f"{prefix}1", "old", text='Zürich — 東京 \U0001f600 "quoted" \\ back\nslash', subject="s1"),
        exchange(f"{prefix}2", "new", "mirror", error="timeout", latency=0.1 + 0.2),
        exchange(f"{prefix}3", "new", "served", subject="alice", stage=1, weight=50, latency=1e-300),
        exchange(
            f"{prefix}4",
            "old",
            payload={"messages": [{"role": "user", "content": "naïve ☃"}], "n": 2**40, "t": 0.7, "x": None},
            subject="s4",
        ),
    ]
    exs[0].deprecation = DeprecationNotice(deprecated=True, sunset=datetime(2027, 1, 31, tzinfo=UTC), link="https://x")
    exs[1].ttft_ms, exs[1].subject = 3.25, None
    exs[3].prompt = "triage@short:v2"
    for ex in exs:
        ex.at = AT
    return exs


def rows_of(exs: list) -> tuple[list, list]:
    made = [MAKER(ex) for ex in exs]
    return [r for r, _ in made], [e for _, e in made if e is not None]


def stored(store, table, prefix: str) -> list[tuple]:
    """Every column but the id as the database holds it (JSON as its stored text), the prefix dropped."""
    columns = [cast(c, Text) if c.name in ("request", "deprecation") else c for c in table.columns if c.name != "id"]
    with store.engine.connect() as conn:
        found = conn.execute(select(*columns).where(table.c.request_id.like(f"{prefix}%"))).all()
    rid = [c.name for c in table.columns if c.name != "id"].index("request_id")
    return sorted(tuple(v.removeprefix(prefix) if i == rid else v for i, v in enumerate(r)) for r in found)


def count(store, table=shadow_log) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_postgres_batch_is_one_statement_storing_what_the_generic_insert_stores(pg_url):
    store = open_store(pg_url)
    writer = LogWriter(store, MAKER)
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    writer._insert(*rows_of(varied("b")))  # the batched path
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == 2 and all("json_to_recordset" in s for s in inserts)  # one per table
    writer._insert(*rows_of(varied("g")), batched=False)  # SQLAlchemy's insert, row by row in the pipeline
    for table in (shadow_log, contamination_ledger):
        assert stored(store, table, "b") == stored(store, table, "g")
    assert len(stored(store, shadow_log, "b")) == 4 and len(stored(store, contamination_ledger, "b")) == 1
    with store.engine.connect() as conn:
        nulls = conn.execute(text("SELECT count(*) FROM shadow_log WHERE deprecation IS NULL")).scalar_one()
        json_nulls = conn.execute(text("SELECT count(*) FROM shadow_log WHERE deprecation::text = 'null'")).scalar_one()
    assert nulls == 0 and json_nulls == 6  # None is JSON null on both paths (SQLAlchemy's JSON type)
    store.dispose()


def test_a_batch_written_twice_with_duplicates_stores_each_answer_once(store):
    writer = LogWriter(store, MAKER)
    rows, ledger = rows_of(varied("d"))
    writer._insert(rows + rows[:2], ledger + ledger)
    writer._insert(rows, ledger)  # a batch whose commit nobody saw, retried
    assert count(store) == 4 and count(store, contamination_ledger) == 1


def test_a_row_the_store_refuses_is_lost_alone(store):
    writer = LogWriter(store, MAKER, batch_size=10, flush_interval=0.01).start()
    bad = exchange("bad", "old")
    bad.model = None  # NOT NULL: both stores refuse it
    for ex in [*varied("n")[:2], bad, *varied("n")[2:]]:
        assert writer.submit(ex)
    writer.close()
    assert writer.lost == 1 and writer.written == 4 and count(store) == 4


def test_postgres_refuses_a_nul_character_and_keeps_the_neighbours(pg_url):
    store = open_store(pg_url)
    writer = LogWriter(store, MAKER, batch_size=10, flush_interval=0.01).start()
    exs = varied("z")
    exs[2] = exchange("z3", "old", text="a NUL \x00 inside")  # no text column of PostgreSQL holds one
    for ex in exs:
        writer.submit(ex)
    writer.close()
    assert writer.lost == 1 and writer.written == 3 and count(store) == 3
    store.dispose()


def test_a_float_json_cannot_carry_goes_through_the_generic_insert(pg_url):
    store = open_store(pg_url)
    writer = LogWriter(store, MAKER, batch_size=10, flush_interval=0.01).start()
    exs = varied("f")
    exs[1].latency_ms = float("nan")
    for ex in exs:
        writer.submit(ex)
    writer.close()
    assert writer.lost == 0 and writer.written == 4
    with store.engine.connect() as conn:
        latency = conn.execute(select(shadow_log.c.latency_ms).where(shadow_log.c.request_id == "f2")).scalar_one()
    assert math.isnan(latency)
    store.dispose()


def test_a_read_only_postgres_holds_the_batches_until_it_is_writable(pg_url):
    """The database turned read-only (SQLSTATE 25006, an outage, not a refusal): the batched insert is
    retried, nothing is lost, and the rows land once it is writable again."""
    store = open_store(pg_url)
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = store.engine.url.database

    def set_read_only(on: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}'))
        store.engine.dispose()  # the pool's sessions started before: new ones get the setting

    writer = LogWriter(store, MAKER, batch_size=4, flush_interval=0.01, max_backoff=0.05).start()
    set_read_only(True)
    for ex in varied("o"):
        writer.submit(ex)
    deadline = time.monotonic() + 20
    while writer.store_errors < 2:
        assert time.monotonic() < deadline, "the writer never met the read-only store"
        time.sleep(0.01)
    assert writer.written == 0 and writer.lost == 0
    set_read_only(False)
    while writer.written < 4:
        assert time.monotonic() < deadline, "the held rows never landed"
        time.sleep(0.01)
    writer.close()
    assert writer.lost == 0 and count(store) == 4 and count(store, contamination_ledger) == 1
    admin.dispose()
    store.dispose()


def test_float_token_counts_from_an_upstream_are_stored_in_the_batch(pg_url):
    """An upstream may report usage as 12.0: json_to_recordset refuses that for an integer, so the record
    set reads numbers and the SELECT casts them, as the generic insert does; one statement, nothing lost."""
    store = open_store(pg_url)
    writer = LogWriter(store, MAKER)
    rows, ledger = rows_of(varied("t"))
    rows[0]["tokens_in"], rows[0]["tokens_out"] = 12.0, 7.0
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    writer._insert(rows, ledger)
    assert sum(s.startswith("INSERT") for s in statements) == 2  # no fallback: one statement per table
    with store.engine.connect() as conn:
        got = conn.execute(
            select(shadow_log.c.tokens_in, shadow_log.c.tokens_out).where(shadow_log.c.request_id == "t1")
        ).one()
    assert tuple(got) == (12, 7)
    store.dispose()
