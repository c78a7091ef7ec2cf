"""The judging budget counted in PostgreSQL, so replicas (and ``serve --workers``) share one budget.

One row per budget window (``budget_windows``: budget, period, spent): the judge
calls of each minute window (period ``m<epoch seconds // window>``, aligned on
the wall clock, so every replica is in the same window) and the judge spend in
USD of each UTC day (period ``d<YYYY-MM-DD>``). Calls are reserved with one
atomic ``UPDATE ... SET spent = spent + n WHERE spent + n <= limit``: replicas
together never make more than ``requests_per_minute`` calls in one minute window
(on PostgreSQL a second UPDATE waits for the first's row lock and re-checks the
condition on the updated row). ``reserve`` returns the window it reserved in;
calls reserved and not made (cache hits) are given back to that window while it
lasts (``give_back``). A call's cost is known only when it returns: it is added
then, and no call is reserved once the day's spend reached ``usd_per_day`` (as
the worker's own budget does). Windows are named from the wall clock
(``time.time()``) at each call, so a clock step moves every replica alike; minute
rows older than an hour are deleted now and then.

A store that cannot be read counts as a spent budget (``store_unavailable``):
no judge call is made that the store could not count. An outage is logged once,
as a warning, and its end once.

``JudgeWorker`` (shadow.judging) keeps its own sliding minute as before and
checks this one on top of it, only on PostgreSQL (several processes can share
only a PostgreSQL store; ``--workers`` refuses SQLite), off its event loop.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Column, Connection, Float, String, Table, delete, select, update
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
PRUNE_EVERY = 100  # reservations between deletions of past minute rows


def day_period(wall: float) -> str:
    return "d" + time.strftime("%Y-%m-%d", time.gmtime(wall))


def minute_period(wall: float, window_s: float) -> str:
    """The minute window of the wall-clock time ``wall``."""
    return f"m{int(wall // window_s)}"


class SharedBudget:
    """A named budget in the store: ``calls`` per minute window, ``usd_per_day`` per UTC day."""

    def __init__(self, store: Store, name: str, calls: int, usd_per_day: float):
        self.store, self.name = store, name[:200]
        self.calls, self.usd_per_day = calls, usd_per_day
        self.errors = 0  # store reads or writes that failed (the budget counted as spent)
        self._down = False  # an outage is being reported (logged once)
        self._reserved = 0
        store.ensure(budget_windows)

    def _failed(self, doing: str, exc: Exception) -> None:
        self.errors += 1
        if not self._down:
            self._down = True
            log.warning("the shared judging budget is unavailable (%s: %s); no judge call until it is back", doing, exc)

    def _ok(self) -> None:
        if self._down:
            self._down = False
            log.warning("the shared judging budget is back")

    def _ensure_row(self, conn: Connection, period: str) -> None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(budget_windows).values(budget=self.name, period=period, spent=0.0).on_conflict_do_nothing()
        )

    def _read(self, conn: Connection, *periods: str) -> dict[str, float]:
        c = budget_windows.c
        rows = conn.execute(select(c.period, c.spent).where(c.budget == self.name, c.period.in_(periods)))
        return {p: float(s) for p, s in rows}

    def spent(self, need: int, window_s: float) -> str | None:
        """Which shared budget ``need`` more calls would exceed now (None: they fit), read only."""
        now = time.time()
        day, minute = day_period(now), minute_period(now, window_s)
        try:
            with self.store.engine.connect() as conn:
                got = self._read(conn, day, minute)
        except Exception as exc:  # noqa: BLE001 - fail closed: no call the store cannot count
            self._failed("reading it", exc)
            return UNAVAILABLE
        self._ok()
        if got.get(day, 0.0) >= self.usd_per_day:
            return "usd_per_day"
        if got.get(minute, 0.0) + need > self.calls:
            return "requests_per_minute"
        return None

    def reserve(self, n: int, window_s: float, day: bool = True) -> tuple[str | None, str]:
        """Reserve ``n`` calls in the current minute window atomically: (None, period) when reserved, else
        (the budget that is spent, period). ``day=False``: the day's spend is not checked (a re-ask of a
        pair already taken)."""
        now = time.time()
        period, c = minute_period(now, window_s), budget_windows.c
        try:
            with self.store.engine.begin() as conn:
                if day and self._read(conn, day_period(now)).get(day_period(now), 0.0) >= self.usd_per_day:
                    return "usd_per_day", period
                self._ensure_row(conn, period)
                taken = conn.execute(
                    update(budget_windows)
                    .where(c.budget == self.name, c.period == period, c.spent + n <= self.calls)
                    .values(spent=c.spent + n)
                ).rowcount
                self._reserved += 1
                if self._reserved % PRUNE_EVERY == 0:
                    self._prune(conn, now, window_s)
        except Exception as exc:  # noqa: BLE001 - fail closed
            self._failed("reserving judge calls", exc)
            return UNAVAILABLE, period
        self._ok()
        return (None if taken == 1 else "requests_per_minute"), period

    def _prune(self, conn: Connection, now: float, window_s: float) -> None:
        """Delete this budget's past minute rows (no reservation or give-back names them any more;
        the day rows stay: one a day)."""
        c = budget_windows.c
        live = [minute_period(now, window_s), minute_period(now - window_s, window_s)]
        conn.execute(delete(budget_windows).where(c.budget == self.name, c.period.like("m%"), c.period.notin_(live)))

    def give_back(self, period: str, n: int, window_s: float) -> None:
        """Return ``n`` calls reserved in ``period`` and not made, while that window lasts."""
        if n <= 0 or period != minute_period(time.time(), window_s):
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
        except Exception as exc:  # noqa: BLE001 - counted (a lost give-back makes the budget stricter, a lost cost looser)
            self._failed("updating it", exc)
            return
        self._ok()

    def refill_in(self, need: int, window_s: float) -> float | None:
        """Seconds until the shared budget may take ``need`` calls (None: it can now)."""
        spent = self.spent(need, window_s)
        if spent is None:
            return None
        if spent == "usd_per_day":
            return max(1.0, 86400.0 - time.time() % 86400.0)
        if spent == UNAVAILABLE:
            return 1.0
        return max(0.01, window_s - time.time() % window_s)
