"""The store-backed pieces replicas coordinate with: the named lease and the shared judging budget,
on SQLite and PostgreSQL, with processes racing as threads on their own connections."""

from __future__ import annotations

import concurrent.futures

from changeover.shadow.shared_budget import SharedBudget
from changeover.store.lease import NamedLease, lease_holder


def _expire(store, name: str) -> None:
    """The lease row expires now (as if its holder had stopped renewing a TTL ago)."""
    from sqlalchemy import update

    from changeover.store.lease import named_leases

    with store.engine.begin() as conn:
        conn.execute(update(named_leases).where(named_leases.c.name == name).values(expires_at=0))


def test_one_holder_renewal_takeover_after_expiry_and_release(store):
    a, b = NamedLease(store, "job", ttl=5), NamedLease(store, "job", ttl=5)
    assert a.hold() and not b.hold()
    first = lease_holder(store, "job")
    assert first.owner == a.owner and first.alive
    assert a.hold() and lease_holder(store, "job").acquired_at == first.acquired_at  # renewed, not re-taken
    _expire(store, "job")  # a stopped renewing
    assert b.hold()  # b takes over the expired row
    assert lease_holder(store, "job").owner == b.owner and not a.hold()
    b.release()
    assert a.hold() and a.taken == 2 and b.taken == 1
    assert a.errors == 0 and b.errors == 0


def test_racing_takers_one_winner(store):
    leases = [NamedLease(store, "race", ttl=30) for _ in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda lease: lease.hold(), leases))
    assert sum(won) == 1


def test_shared_budget_never_exceeds_its_limit_under_racing_reservations(store):
    budgets = [SharedBudget(store, "judge:x", calls=10, usd_per_day=1.0) for _ in range(4)]
    window = 1e9  # one window for the whole test (never straddles a boundary)

    def take(budget: SharedBudget) -> int:
        return sum(budget.reserve(3, window)[0] is None for _ in range(5))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        reserved = sum(pool.map(take, budgets))
    assert reserved == 3  # 3 x 3 calls fit under 10, a fourth does not
    assert budgets[0].spent(1, window) is None and budgets[0].spent(2, window) == "requests_per_minute"
    spent, period = budgets[2].reserve(3, window)
    assert spent == "requests_per_minute"
    budgets[1].give_back(period, 3, window)
    assert budgets[2].reserve(3, window)[0] is None
    budgets[1].give_back("m0", 3, window)  # a window that has passed: nothing given back
    assert budgets[2].reserve(2, window)[0] == "requests_per_minute"  # 9 + 2 > 10
    budgets[3].add_usd(1.0)  # the day's spend reached usd_per_day: nothing more is reserved
    budgets[1].give_back(period, 1, window)
    assert budgets[0].reserve(1, window)[0] == "usd_per_day"
    assert budgets[0].reserve(1, window, day=False)[0] is None  # a re-ask: the minute only
    assert sum(b.errors for b in budgets) == 0


def test_a_replica_that_retakes_the_controller_lease_counts_afresh(make_spec, gw_store):
    from sqlalchemy import update

    from changeover.config import load_spec
    from changeover.shadow.app import CONTROLLER_LEASE, GatewayService
    from changeover.store.lease import named_leases

    trigger = {"metric": "error_rate", "above_baseline": 0.01, "min_samples": 5}
    service = GatewayService(load_spec(make_spec(rollout={"triggers": [trigger]})), gw_store)
    assert service._lease_turn()
    service.controller.tick()
    (name,) = list(service.controller.records)
    service.controller.records[name].failures = 3  # counted while it held the lease

    def expire() -> None:
        with gw_store.engine.begin() as conn:
            conn.execute(update(named_leases).where(named_leases.c.name == CONTROLLER_LEASE).values(expires_at=0))

    expire()
    other = NamedLease(gw_store, CONTROLLER_LEASE, ttl=30)
    assert other.hold() and not service._lease_turn()  # another replica ran the analysis meanwhile
    expire()
    assert service._lease_turn()  # taken back: the stale failures are not reused
    service.controller.tick()
    assert service.controller.records[name].failures == 0


def test_racing_inserts_of_the_same_records_store_them_once_and_lose_no_batch(store):
    import threading

    from changeover.records import Record
    from changeover.store.responses import add_records, load_records_counted

    records = [Record(item=f"q{i}", model=m, signals={"ok": 1.0}) for i in range(50) for m in ("old", "new")]
    gate = threading.Barrier(4)

    def insert(k: int) -> None:
        gate.wait()
        add_records(store, records[k * 10 :] + records[: k * 10], source="race")  # overlapping batches

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(insert, range(4)))  # none raises on the fingerprint's unique constraint
    stored = load_records_counted(store, ["old", "new"], "race", None)[0]
    assert len(stored) == len(records)


def test_a_lease_whose_renewal_stalled_is_not_held_before_its_row_can_expire(store, monkeypatch):
    import time
    import types

    from changeover.store import lease as lease_module

    a = NamedLease(store, "stall", ttl=5)
    assert a.hold() and a.held
    later = time.monotonic() + 5 * (1 - lease_module.MARGIN)  # no renewal for nine tenths of the TTL
    monkeypatch.setattr(lease_module, "time", types.SimpleNamespace(time=time.time, monotonic=lambda: later))
    assert not a.held  # the row may expire any moment now: this process must not act as the holder


def test_an_unreachable_shared_budget_is_spent_counted_and_logged_once(store, caplog):
    import logging

    from sqlalchemy import create_engine

    from changeover.shadow.metrics import Metrics, judge_gauges
    from changeover.store.engine import Store

    budget = SharedBudget(store, "judge:away", calls=10, usd_per_day=1.0)
    gone = "postgresql+psycopg://postgres@127.0.0.1:1/gone?connect_timeout=2"  # nothing listens on port 1
    budget.store = Store(create_engine(gone), gone)
    with caplog.at_level(logging.WARNING, logger="changeover.gateway"):
        assert budget.spent(1, 60.0) == "store_unavailable"
        assert budget.reserve(1, 60.0)[0] == "store_unavailable"
        budget.give_back(budget.reserve(1, 60.0)[1], 1, 60.0)
    assert budget.errors == 4
    warnings = [r for r in caplog.records if "shared judging budget is unavailable" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].exc_info is None  # once, without a traceback

    class Worker:  # the judging worker's counters as judge_gauges reads them
        judged = dropped = prefiltered = errors = judge_calls = 0
        compared: dict[str, int] = {}
        paused = {"store_unavailable": 2}
        shared = budget

        class queue:  # noqa: N801
            @staticmethod
            def qsize() -> int:
                return 0

    text = Metrics().render(judge_gauges(Worker()))
    assert 'changeover_judge_pairs_paused_total{budget="store_unavailable"} 2' in text
    assert "changeover_judge_shared_budget_errors_total 4" in text
