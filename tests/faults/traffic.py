"""Client traffic for the fault tests: threads post chat requests and remember what was acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable

import httpx
from sqlalchemy import func, select
from tests.gateway.helpers import chat

from changeover.shadowlog.tables import shadow_log
from changeover.store import Store


class Traffic:
    """``clients`` threads sending requests to ``url`` until ``stop()``; a 200 answer is *acknowledged*."""

    def __init__(self, url: str, clients: int = 4, users: int = 200):
        self.url = url
        self.clients = clients
        self.users = users
        self.acknowledged: set[str] = set()
        self.acked_at: dict[str, float] = {}  # request id -> time.monotonic() of the answer
        self.served_by: Counter[str] = Counter()
        self.statuses: Counter[int | str] = Counter()
        self.sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _client(self, index: int) -> None:
        with httpx.Client(timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                user = f"user-{(index * 7919 + i) % self.users}"
                i += 1
                try:
                    r = client.post(
                        self.url + "/v1/chat/completions",
                        json=chat(f"q{index}-{i}"),
                        headers={"x-changeover-user": user},
                    )
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.statuses[type(exc).__name__] += 1
                    continue
                with self._lock:
                    self.sent += 1
                    self.statuses[r.status_code] += 1
                    if r.status_code == 200:
                        self.acknowledged.add(r.headers["x-changeover-request-id"])
                        self.acked_at[r.headers["x-changeover-request-id"]] = time.monotonic()
                        self.served_by[r.headers["x-changeover-model"]] += 1

    def start(self) -> Traffic:
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.clients)]
        for t in self._threads:
            t.start()
        return self

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def wait_for(self, n: int, timeout: float = 30.0) -> None:
        """Until ``n`` more answers than now have been acknowledged."""
        target = self.count() + n
        deadline = time.monotonic() + timeout
        while self.count() < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"traffic stalled: {self.count()} of {target} acknowledged; {self.statuses}")
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def served_rows(store: Store) -> Counter[str]:
    """How many ``served`` rows the log holds per request id (exactly one each is the goal)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(shadow_log.c.request_id, func.count())
            .where(shadow_log.c.role == "served")
            .group_by(shadow_log.c.request_id)
        ).all()
    return Counter({r[0]: r[1] for r in rows})


def kill_when(proc: subprocess.Popen, progress: Callable[[], int], at: int, timeout: float = 60.0) -> int:
    """SIGKILL ``proc`` as soon as ``progress()`` reaches ``at``; the progress seen at the kill."""
    deadline = time.monotonic() + timeout
    try:
        while (seen := progress()) < at:
            if proc.poll() is not None:
                raise AssertionError(f"the job ended (rc {proc.returncode}) before the kill point {at}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the job never reached the kill point {at} (at {seen})")
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    return seen


def wait_until(predicate, timeout: float = 30.0, what: str = "condition") -> float:
    """Poll ``predicate`` until true; seconds it took."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - t0
