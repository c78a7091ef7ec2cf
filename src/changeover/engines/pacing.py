"""Pacing by reservation: a token bucket that answers "start in this many seconds" instead of sleeping.

One bucket can then serve callers in other processes (a Ray actor holds it and
each worker sleeps its own delay), and the same arithmetic paces a job in one
process (``embeddings.ratelimit``). Reservations are served in arrival order
and future ones are counted: a caller told to wait 2 s has its tokens taken
at that instant, so the next caller queues behind it, never beside it. A
caller that dies after reserving wastes its tokens, which only ever errs on
the side of the limit.
"""

from __future__ import annotations


class Pace:
    """At most ``rate`` units a second in the long run, bursts up to ``capacity``; starts full.

    ``reserve(n, now)`` takes ``n`` units and returns how long to wait before using them. A
    request larger than the capacity waits for a full bucket and leaves it in debt (paced, never
    refused); a caller that must not go into debt passes ``min(n, capacity)``.
    """

    def __init__(self, rate: float, capacity: float, now: float):
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self.level = self.capacity  # units available at time ``stamp``
        self.stamp = now  # never before ``now`` once a reservation was queued into the future

    def reserve(self, n: float, now: float) -> float:
        """Take ``n`` units; seconds from ``now`` until they may be used (0.0: at once)."""
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now
        need = min(float(n), self.capacity)
        if self.level < need:
            self.stamp += (need - self.level) / self.rate
            self.level = need
        self.level -= float(n)
        return max(0.0, self.stamp - now)
