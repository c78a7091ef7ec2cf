"""The token bucket keeps the long-run rate and lets the first batch through at once."""

from __future__ import annotations

import pytest

from changeover.embeddings.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_bucket_paces_batches_to_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(10.0, capacity=20, clock=clock, sleep=clock.sleep)  # 600/min, batches of 20
    bucket.acquire(20)
    assert clock.t == 0.0  # first batch: no wait
    for _ in range(10):
        bucket.acquire(20)
    assert clock.t == pytest.approx(20.0)  # 200 more documents at 10/s
    assert bucket.waited == pytest.approx(20.0)


def test_bucket_refills_while_work_takes_time():
    clock = FakeClock()
    bucket = TokenBucket(5.0, capacity=5, clock=clock, sleep=clock.sleep)
    bucket.acquire(5)
    clock.t += 1.0  # encoding took 1 s: 5 tokens back
    bucket.acquire(5)
    assert bucket.waited == 0.0


def test_oversized_request_is_paced_not_refused():
    clock = FakeClock()
    bucket = TokenBucket(1.0, capacity=2, clock=clock, sleep=clock.sleep)
    bucket.acquire(2)
    bucket.acquire(4)  # waits for a full bucket, goes into debt
    bucket.acquire(1)
    assert clock.t == pytest.approx(2.0 + 3.0)
