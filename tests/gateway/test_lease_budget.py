"""The store-backed pieces replicas coordinate with: the named lease and the shared judging budget,
on SQLite and PostgreSQL, with processes racing as threads on their own connections."""

from __future__ import annotations

import concurrent.futures
import time

from changeover.shadow.shared_budget import SharedBudget
from changeover.store.lease import NamedLease, lease_holder


def test_one_holder_renewal_takeover_after_expiry_and_release(store):
    a, b = NamedLease(store, "job", ttl=0.5), NamedLease(store, "job", ttl=0.5)
    assert a.hold() and not b.hold()
    first = lease_holder(store, "job")
    assert first.owner == a.owner and first.alive
    assert a.hold() and lease_holder(store, "job").acquired_at == first.acquired_at  # renewed, not re-taken
    deadline = time.monotonic() + 10
    while not b.hold():  # a stopped renewing: b takes over once the row expired
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert time.time() >= first.expires_at
    assert lease_holder(store, "job").owner == b.owner and not a.hold()
    b.release()
    assert a.hold() and a.taken == 2 and b.taken == 1


def test_racing_takers_one_winner(store):
    leases = [NamedLease(store, "race", ttl=30) for _ in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda lease: lease.hold(), leases))
    assert sum(won) == 1


def test_shared_budget_never_exceeds_its_limit_under_racing_reservations(store):
    budgets = [SharedBudget(store, "judge:x", calls=10, usd_per_day=1.0) for _ in range(4)]
    at = time.monotonic()
    window = 3600.0  # one window for the whole test

    def take(budget: SharedBudget) -> int:
        return sum(budget.reserve(3, at, window) is None for _ in range(5))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        reserved = sum(pool.map(take, budgets))
    assert reserved == 3  # 3 x 3 calls fit under 10, a fourth does not
    assert budgets[0].spent(1, window) is None and budgets[0].spent(2, window) == "requests_per_minute"
    budgets[1].give_back(at, 3, window)
    assert budgets[2].reserve(3, at, window) is None
    budgets[3].add_usd(1.0)  # the day's spend reached usd_per_day: nothing more is reserved
    assert budgets[0].reserve(1, at, window) == "usd_per_day"
    assert budgets[0].reserve(1, at, window, day=False) is None  # a re-ask: the minute only
