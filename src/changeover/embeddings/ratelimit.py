"""A token bucket: at most ``rate`` documents per second on average, bursts up to ``capacity``."""

from __future__ import annotations

import time
from collections.abc import Callable


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
        self._tokens = self.capacity
        self._last = clock()
        self.waited = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self, n: float = 1.0) -> None:
        need = min(float(n), self.capacity)
        self._refill()
        while self._tokens < need:
            wait = (need - self._tokens) / self.rate
            self._sleep(wait)
            self.waited += wait
            self._refill()
        self._tokens -= float(n)
