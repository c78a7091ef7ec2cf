"""A token bucket: at most ``rate`` documents per second on average, bursts up to ``capacity``.

The arithmetic is ``engines.pacing.Pace``; here it sleeps in this process. On
Ray the same bucket lives in one actor and every worker sleeps the delay it is
given (``engines.ray.SharedBucket``), so the rate holds for the whole job.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from changeover.engines.pacing import Pace


class TokenBucket:
    """``acquire(n)`` blocks until ``n`` tokens are available, then takes them.

    The bucket starts full, so a job's first batch goes out at once; after that
    the long-run rate never exceeds ``rate``. A request larger than the
    capacity is let through once the bucket is full and leaves it in debt, so
    big batches are paced rather than refused.
    """

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate))
        self._clock = clock
        self._sleep = sleep
        self._pace = Pace(self.rate, self.capacity, clock())
        self.waited = 0.0

    def acquire(self, n: float = 1.0) -> None:
        wait = self._pace.reserve(n, self._clock())
        if wait > 0:
            self._sleep(wait)
            self.waited += wait
