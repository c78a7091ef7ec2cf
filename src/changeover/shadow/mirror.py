"""Mirroring off the request path: a bounded queue of requests replayed to the candidates.

``offer`` never waits: a sampled request is queued once per candidate, and when
the queue is full the mirror is dropped and counted. A fixed pool of workers
sends the mirrors (non-streaming, with the shadow timeout), so a hanging or
failing candidate can only fill the queue, never slow the user's answer.

During the rollout's hold the direction turns: the candidate serves and a job
with ``to`` set (the incumbent) is the *reverse mirror*, sent to that model only;
its pair for the judges has the mirrored answer as the incumbent's.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from changeover.shadow.exchange import Exchange
from changeover.shadow.judging import MirroredPair
from changeover.shadow.prompting import LivePrompts
from changeover.shadow.upstream import UpstreamClient, UpstreamFailure
from changeover.store.events import now


@dataclass(frozen=True, slots=True)
class MirrorJob:
    request_id: str
    payload: dict[str, Any]
    request_type: str
    subject: str | None
    stage: int
    weight: int
    authorization: str | None  # kept in memory for the call only
    prompt_id: str | None = None  # the registry prompt the request is (a candidate's variant applies)
    served: Exchange | None = None  # the incumbent's answer, for judging the pair
    expect_refusal: bool | None = None
    to: str | None = None  # the reverse mirror: send to this model only (the incumbent, during the hold)


def drawn(rate: float) -> bool:
    """A request sampled at ``rate`` (0..1)."""
    return rate >= 1.0 or (rate > 0.0 and random.random() < rate)


class Mirror:
    def __init__(
        self,
        upstreams: dict[str, UpstreamClient],
        candidates: list[str],
        rate: Callable[[str], float],
        on_answer: Callable[[Exchange], Any],
        queue_size: int = 1000,
        concurrency: int = 8,
        timeout: float = 30.0,
        prompts: LivePrompts | None = None,
        on_pair: Callable[[MirroredPair], Any] | None = None,
    ):
        self.upstreams = upstreams
        self.candidates = candidates
        self.rate = rate
        self.on_answer = on_answer
        self.timeout = timeout
        self.prompts = prompts
        self.on_pair = on_pair  # the judging worker's non-blocking offer
        self.concurrency = concurrency
        self.queue: asyncio.Queue[tuple[str, MirrorJob]] = asyncio.Queue(maxsize=queue_size)
        self.offered: Counter[str] = Counter()  # jobs offered per target (sent + dropped, once done)
        self.sent: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.considered: Counter[str] = Counter()  # served requests that could be mirrored, per request type
        self.mirrored: Counter[str] = (
            Counter()
        )  # ... and were drawn at the type's rate (keep-alive: ``shadow.keepalive``)
        self._workers: list[asyncio.Task] = []

    def sampled(self, request_type: str) -> bool:
        """Drawn at the type's current rate (the configured one, or the keep-alive rate once settled); counted."""
        self.considered[request_type] += 1
        if not drawn(self.rate(request_type)):
            return False
        self.mirrored[request_type] += 1
        return True

    def offer(self, job: MirrorJob) -> None:
        """Queue ``job`` for every candidate (the reverse mirror: for ``job.to``); drop (and count) what
        does not fit."""
        for candidate in [job.to] if job.to is not None else self.candidates:
            self.offered[candidate] += 1
            try:
                self.queue.put_nowait((candidate, job))
            except asyncio.QueueFull:
                self.dropped[candidate] += 1

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"changeover-mirror-{i}") for i in range(self.concurrency)
        ]

    async def stop(self) -> None:
        """Stop the workers; mirrors still queued are dropped (counted) - users never waited on them."""
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        while not self.queue.empty():
            candidate, _ = self.queue.get_nowait()
            self.dropped[candidate] += 1

    async def _work(self) -> None:
        while True:
            candidate, job = await self.queue.get()
            try:
                await self._send(candidate, job)
            finally:
                self.queue.task_done()

    async def _send(self, candidate: str, job: MirrorJob) -> None:
        upstream = self.upstreams[candidate]
        payload = job.payload
        if "stream_options" in payload:  # a mirror is not streamed
            payload = {k: v for k, v in payload.items() if k != "stream_options"}
        prompt = None
        if self.prompts is not None:
            payload, prompt = self.prompts.apply(payload, job.prompt_id, upstream.config.prompt_for)
        content = upstream.encode(payload, stream=False)
        at = now()
        t0 = time.perf_counter()
        status = body = error = notice = None
        try:
            reply = await upstream.post_mirror(content, job.authorization, self.timeout)
            status, body, notice = reply.status, reply.body, reply.notice
        except UpstreamFailure as exc:  # every failure of a candidate is data, not a crash
            error = exc.kind
            self.failed[candidate] += 1
        self.sent[candidate] += 1
        answer = Exchange(
            request_id=job.request_id,
            at=at,
            model=candidate,
            role="mirror",
            request_type=job.request_type,
            subject=job.subject,
            stage=job.stage,
            weight=job.weight,
            stream=False,
            payload=job.payload,
            body=body,
            status=status,
            error=error,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
            prompt=prompt,
            deprecation=notice,
        )
        self.on_answer(answer)
        if self.on_pair is not None and job.served is not None:
            served, mirrored = (answer, job.served) if job.to is not None else (job.served, answer)
            self.on_pair(MirroredPair(served, mirrored, job.expect_refusal))
