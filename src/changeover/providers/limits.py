"""Per-provider budgets: requests per minute and tokens per minute as async token buckets."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Holds up to ``capacity`` units, refilled at ``per_minute`` / 60 units a second.

    The capacity is one second's worth (at least one request), so a fresh
    bucket allows a small burst and then the steady rate; waiters are served
    in arrival order.
    """

    def __init__(self, per_minute: float, capacity: float | None = None):
        self.rate = per_minute / 60.0
        self.capacity = capacity if capacity is not None else max(1.0, self.rate)
        self.level = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, units: float = 1.0) -> None:
        units = min(units, self.capacity)  # a request larger than the bucket waits for a full one
        async with self._lock:
            while True:
                self._refill()
                if self.level >= units:
                    self.level -= units
                    return
                await asyncio.sleep((units - self.level) / self.rate)


class RateLimits:
    """Requests-per-minute and tokens-per-minute budgets of one model (either may be unset)."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm, capacity=max(1.0, tpm / 6.0)) if tpm else None

    async def acquire(self, tokens: int) -> None:
        if self.requests is not None:
            await self.requests.take(1.0)
        if self.tokens is not None:
            await self.tokens.take(float(tokens))
