"""The judging budget counted in the store, so replicas (and ``serve --workers``) share one budget.

One row per budget window (``budget_windows``: budget, period, spent): the judge
calls of each minute window (period ``m<epoch seconds // window>``, aligned on
the wall clock, so every replica is in the same window) and the judge spend in
USD of each UTC day (period ``d<YYYY-MM-DD>``). Calls are reserved with one
atomic ``UPDATE ... SET spent = spent + n WHERE spent + n <= limit``: replicas
together never make more than ``requests_per_minute`` calls in one minute window
(on PostgreSQL a second UPDATE waits for the first's row lock and re-checks the
condition on the updated row; SQLite has one writer). Calls reserved and not
made (cache hits) are given back to their window while it lasts. A call's cost
is known only when it returns: it is added then, and no call is reserved once
the day's spend reached ``usd_per_day`` (as the worker's own budget does).

A store that cannot be read counts as a spent budget (``store_unavailable``):
no judge call is made that the store could not count.

``JudgeWorker`` (shadow.judging) keeps its own sliding minute as before and
checks this one on top of it. Reservation times are the worker's monotonic
ones, turned into wall-clock windows with one offset taken at start, so a
reservation and its give-back always name the same window.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Column, Connection, Float, String, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from changeover.store import Store
from changeover.store.schema import metadata

log = logging.getLogger("changeover.gateway")

budget_windows = Table(
    "budget_windows",
    metadata,
    Column("budget", String(200), primary_key=True),
    Column("period", String(32), primary_key=True),
    Column("spent", Float, nullable=False),
)

UNAVAILABLE = "store_unavailable"


def day_period(wall: float) -> str:
    return "d" + time.strftime("%Y-%m-%d", time.gmtime(wall))


class SharedBudget:
    """A named budget in the store: ``calls`` per minute window, ``usd_per_day`` per UTC day."""

    def __init__(self, store: Store, name: str, calls: int, usd_per_day: float):
        self.store, self.name = store, name[:200]
        self.calls, self.usd_per_day = calls, usd_per_day
        self._offset = time.time() - time.monotonic()  # monotonic -> wall clock
        self.errors = 0  # store reads or writes that failed (the budget counted as spent)
        store.ensure(budget_windows)

    def period(self, at: float, window_s: float) -> str:
        """The minute window of the monotonic time ``at``."""
        return f"m{int((at + self._offset) // window_s)}"

    def _ensure_row(self, conn: Connection, period: str) -> None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(budget_windows).values(budget=self.name, period=period, spent=0.0).on_conflict_do_nothing()
        )

    def _read(self, *periods: str) -> dict[str, float]:
        c = budget_windows.c
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(c.period, c.spent).where(c.budget == self.name, c.period.in_(periods)))
            return {p: float(s) for p, s in rows}

    def spent(self, need: int, window_s: float) -> str | None:
        """Which shared budget ``need`` more calls would exceed now (None: they fit), read only."""
        now = time.monotonic()
        day, minute = day_period(now + self._offset), self.period(now, window_s)
        try:
            got = self._read(day, minute)
        except Exception:  # noqa: BLE001 - fail closed: no call the store cannot count
            self.errors += 1
            log.exception("cannot read the shared judging budget")
            return UNAVAILABLE
        if got.get(day, 0.0) >= self.usd_per_day:
            return "usd_per_day"
        if got.get(minute, 0.0) + need > self.calls:
            return "requests_per_minute"
        return None

    def reserve(self, n: int, at: float, window_s: float, day: bool = True) -> str | None:
        """Reserve ``n`` calls in the window of ``at`` atomically: None when reserved, else the budget
        that is spent. ``day=False``: the day's spend is not checked (a re-ask of a pair already taken)."""
        if day and (spent := self.spent(0, window_s)) in (UNAVAILABLE, "usd_per_day"):
            return spent
        period, c = self.period(at, window_s), budget_windows.c
        try:
            with self.store.engine.begin() as conn:
                self._ensure_row(conn, period)
                taken = conn.execute(
                    update(budget_windows)
                    .where(c.budget == self.name, c.period == period, c.spent + n <= self.calls)
                    .values(spent=c.spent + n)
                ).rowcount
        except Exception:  # noqa: BLE001 - fail closed
            self.errors += 1
            log.exception("cannot reserve judge calls in the shared budget")
            return UNAVAILABLE
        return None if taken == 1 else "requests_per_minute"

    def give_back(self, at: float, n: int, window_s: float) -> None:
        """Return ``n`` calls reserved at ``at`` and not made, while their window lasts."""
        period = self.period(at, window_s)
        if n <= 0 or period != self.period(time.monotonic(), window_s):
            return
        self._add(period, -n)

    def add_usd(self, usd: float) -> None:
        """Count a call's cost in today's (UTC) spend."""
        if usd > 0:
            self._add(day_period(time.time()), usd)

    def _add(self, period: str, amount: float) -> None:
        c = budget_windows.c
        try:
            with self.store.engine.begin() as conn:
                self._ensure_row(conn, period)
                conn.execute(
                    update(budget_windows)
                    .where(c.budget == self.name, c.period == period)
                    .values(spent=c.spent + amount)
                )
        except Exception:  # noqa: BLE001 - counted (a lost give-back makes the budget stricter, a lost cost looser)
            self.errors += 1
            log.exception("cannot update the shared judging budget")

    def refill_in(self, need: int, window_s: float) -> float | None:
        """Seconds until the shared budget may take ``need`` calls (None: it can now)."""
        spent = self.spent(need, window_s)
        if spent is None:
            return None
        if spent == "usd_per_day":
            return max(1.0, 86400.0 - time.time() % 86400.0)
        if spent == UNAVAILABLE:
            return 1.0
        return max(0.01, window_s - (time.monotonic() + self._offset) % window_s)
