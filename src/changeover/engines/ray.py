"""The Ray engine: batches as Ray tasks, one actor pacing every worker's calls, a dead worker's batch retried.

``ray_session(engine)`` connects to the cluster (``--ray-address``) or starts a
local Ray, and starts one ``Pacer`` actor: the token buckets of the job (a
model's requests and tokens per minute, re-embedding's documents per second)
live there, once, so a limit holds for the whole job however many workers
run. Workers ask it for a reservation and sleep the delay it returns
(``engines.pacing``): one small message per call or batch, no lock held
across processes, and nothing to clean up when a worker dies. The store is
not used for this: a bucket is a few numbers changing at every call, which
would cost a write transaction per model call across processes (and, on
SQLite, serialise the workers on the file lock), while losing it with the
job is harmless - limits are about the next minute, not about what is stored.

What must survive a crash (the call cache, vectors, the job row, the lease)
is in the store, written by the workers themselves in the same transactions
the local engine uses, so a SIGKILLed worker loses only its work in flight:
Ray runs its batch again (``Engine.retries``), the batch skips what was
stored, and rerunning the same command resumes a job that stopped.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from changeover.engines import RAY_EXTRA, Engine, EngineUnavailable
from changeover.engines.pacing import Pace
from changeover.errors import ChangeoverError


def require_ray() -> ModuleType:
    """The ``ray`` module, or an ``EngineUnavailable`` saying what to install."""
    try:
        import ray
    except ImportError as exc:
        raise EngineUnavailable(
            f"--engine ray needs Ray, an optional extra that is not installed here ({exc}); install it: {RAY_EXTRA}"
        ) from None
    return ray


class Pacer:
    """The job's token buckets, by key (the body of the Ray actor; plain Python, tested as such)."""

    def __init__(self) -> None:
        self._paces: dict[str, Pace] = {}
        self.reserved: dict[str, float] = {}

    def reserve(self, key: str, rate: float, capacity: float, n: float) -> float:
        """Take ``n`` units of bucket ``key`` (created full on first use); seconds to wait before using them."""
        now = time.monotonic()
        pace = self._paces.get(key)
        if pace is None:
            pace = self._paces[key] = Pace(rate, capacity, now)
        self.reserved[key] = self.reserved.get(key, 0.0) + n
        return pace.reserve(n, now)

    def totals(self) -> dict[str, float]:
        """Units reserved per bucket so far."""
        return dict(self.reserved)


class SharedLimits:
    """A model's requests- and tokens-per-minute budgets held by the job's ``Pacer``: what
    ``providers.limits.RateLimits`` is in one process (same capacities, no debt), for a worker."""

    def __init__(self, pacer: Any, model: str, rpm: float | None, tpm: float | None):
        from changeover.providers.limits import RateLimits

        local = RateLimits(rpm, tpm)  # its buckets' rates and capacities, so both engines agree
        self.pacer = pacer
        self.buckets = [  # (key, rate per second, capacity, counts tokens rather than requests)
            (f"{model}:{what}", bucket.rate, bucket.capacity, what == "tokens")
            for what, bucket in (("requests", local.requests), ("tokens", local.tokens))
            if bucket is not None
        ]

    async def acquire(self, tokens: int) -> None:
        for key, rate, capacity, by_tokens in self.buckets:
            units = min(float(tokens), capacity) if by_tokens else 1.0  # as RateLimits: never into debt
            delay = await self.pacer.reserve.remote(key, rate, capacity, units)
            if delay > 0:
                await asyncio.sleep(delay)


class SharedBucket:
    """A blocking token bucket held by the job's ``Pacer`` (``embeddings.ratelimit.TokenBucket`` for a worker)."""

    def __init__(self, pacer: Any, key: str, rate: float, capacity: float):
        self.pacer, self.key, self.rate, self.capacity = pacer, key, float(rate), float(capacity)
        self.waited = 0.0

    def acquire(self, n: float = 1.0) -> None:
        ray = require_ray()
        delay = ray.get(self.pacer.reserve.remote(self.key, self.rate, self.capacity, float(n)))
        if delay > 0:
            time.sleep(delay)
            self.waited += delay


def worker_url(url: str) -> str:
    """The store URL as a worker must open it: a relative SQLite path made absolute (a worker's
    working directory need not be the driver's). SQLite needs the workers on this machine (a local
    Ray); a cluster of several machines shares a PostgreSQL store."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/") and ":memory:" not in url:
        path, _, query = url[len(prefix) :].partition("?")
        return prefix + str(Path(path).resolve()) + (f"?{query}" if query else "")
    return url


def _with_env(fn: Callable[..., Any], env: dict[str, str], *payload: Any) -> Any:
    """``fn(*payload)`` in a Ray worker with ``env`` set, and the worker's own values put back after."""
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return fn(*payload)
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class RaySession:
    """A connected Ray, the job's pacer actor, and ``map`` to run batches as tasks."""

    ray: ModuleType
    engine: Engine
    pacer: Any

    @property
    def workers(self) -> int:
        """How many batches run at once: the cluster's CPUs (one task per CPU)."""
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def map(
        self,
        fn: Callable[..., Any],
        payloads: Sequence[tuple[Any, ...]],
        on_done: Callable[[int, Any], None] | None = None,
        what: str = "batch",
        env: dict[str, str] | None = None,
    ) -> list[Any]:
        """``fn(*payload)`` for every payload as Ray tasks; results in payload order.

        ``env``: variables (API keys) set in the worker for the task's length. They travel in the object
        store, not as a ``runtime_env``, which the Ray dashboard and ``ray list tasks`` show to anyone
        with access to the cluster. ``on_done(i, result)`` runs on the driver as each finishes. A task
        whose worker died is run again up to ``engine.retries`` times; past that, or on an error, the other tasks are
        cancelled and the error raised (a ``ChangeoverError`` from a task as itself).
        """
        ray = self.ray
        options: dict[str, Any] = {"num_cpus": 1, "max_retries": self.engine.retries, "retry_exceptions": False}
        remote = ray.remote(**options)(_with_env).options(name=getattr(fn, "__name__", what))  # ray::<fn> in ps
        secrets = ray.put(dict(env or {}))  # in the object store, not in a runtime_env the dashboard shows
        refs = [remote.remote(fn, secrets, *payload) for payload in payloads]
        position = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    i = position[ref]
                    results[i] = self._get(ref, i, len(refs), what)
                    if on_done is not None:
                        on_done(i, results[i])
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise
        return results

    def _get(self, ref: Any, i: int, n: int, what: str) -> Any:
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.RayTaskError as exc:
            if isinstance(exc.cause, ChangeoverError):
                raise exc.cause from None
            raise
        except (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.TaskCancelledError) as exc:
            raise EngineUnavailable(
                f"a Ray worker died running {what} {i + 1} of {n} (tried {self.engine.retries + 1} time(s): "
                f"{type(exc).__name__}); everything stored before is kept - run the same command again to resume"
            ) from None
        except exceptions.RayError as exc:  # out of memory, an object lost, its owner gone: the cluster, not us
            raise EngineUnavailable(
                f"Ray could not run {what} {i + 1} of {n} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                "everything stored before is kept - run the same command again to resume"
            ) from None


@contextmanager
def ray_session(engine: Engine) -> Iterator[RaySession]:
    """Connect to ``engine.address`` or start a local Ray (stopped again after); reuse a Ray already
    initialised in this process (a test's, a notebook's) and leave it running."""
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        address = engine.address or "local"
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise EngineUnavailable(
                f"--ray-address {address}: cannot start or reach Ray ({exc}); give the address of a running "
                "cluster (`ray start --head` prints it) or leave --ray-address out to start a local Ray"
            ) from None
        started = True
    try:
        pacer = ray.remote(num_cpus=0)(Pacer).remote()
        yield RaySession(ray, engine, pacer)
    finally:
        if started:
            ray.shutdown()
