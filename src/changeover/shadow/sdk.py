"""In-app mirroring: wrap an ``openai.OpenAI`` client so calls are also sent to a candidate, off the call path.

For teams that capture context in-process rather than through the gateway::

    client = MirroredOpenAI(openai.OpenAI(), openai.OpenAI(base_url=...), incumbent="gpt-4o",
                            candidate="llama-3.1-70b", store=open_store(None))
    client.chat.completions.create(model="gpt-4o", messages=[...])   # the incumbent's answer, as before
    client.close()                                                    # drains the log to the store

A sampled call is queued for background threads (bounded; full = dropped and
counted); both answers go to the shadow log through the same batched writer as
the gateway, so ``changeover shadow report`` reads them alike. Streams are
passed through chunk by chunk and logged when they end.
"""

from __future__ import annotations

import queue
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from changeover.shadow.config import Upstream
from changeover.shadow.exchange import Exchange
from changeover.shadow.redact import Redactor
from changeover.shadow.rows import RowMaker
from changeover.shadow.writer import LogWriter
from changeover.store import Store
from changeover.store.events import now

_STOP = object()


class _Completions:
    def __init__(self, owner: MirroredOpenAI):
        self._owner = owner

    def create(self, **kwargs: Any) -> Any:
        return self._owner._create(kwargs)


class _Chat:
    def __init__(self, owner: MirroredOpenAI):
        self.completions = _Completions(owner)


class MirroredOpenAI:
    """An ``openai.OpenAI`` look-alike for ``chat.completions.create`` that mirrors to a candidate."""

    def __init__(
        self,
        client: Any,
        candidate_client: Any,
        *,
        incumbent: str,
        candidate: str,
        candidate_model: str | None = None,
        store: Store | None = None,
        sample: float = 1.0,
        queue_size: int = 100,
        workers: int = 2,
        request_type: str = "default",
        redactor: Redactor | None = None,
    ):
        self.client = client
        self.candidate_client = candidate_client
        self.incumbent = incumbent
        self.candidate = candidate
        self.candidate_model = candidate_model or candidate
        self.sample = sample
        self.request_type = request_type
        self.chat = _Chat(self)
        self.mirrored = 0
        self.dropped = 0
        self.failed = 0
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.writer = None
        if store is not None:
            upstreams = {m: Upstream(base_url="http://in-app") for m in (incumbent, candidate)}
            self.writer = LogWriter(store, RowMaker(upstreams, {candidate}, redactor or Redactor([]))).start()
        self._threads = [
            threading.Thread(target=self._work, daemon=True, name=f"changeover-mirror-{i}") for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ the call path

    def _create(self, kwargs: dict[str, Any]) -> Any:
        request_id = uuid.uuid4().hex
        at, t0 = now(), time.perf_counter()
        try:
            answer = self.client.chat.completions.create(**kwargs)
        except Exception as exc:
            self._log(request_id, self.incumbent, "served", kwargs, None, type(exc).__name__, at, t0, False)
            raise
        if kwargs.get("stream"):
            return self._relay(answer, request_id, kwargs, at, t0)
        self._log(request_id, self.incumbent, "served", kwargs, answer.model_dump_json().encode(), None, at, t0, False)
        self._offer(request_id, kwargs)
        return answer

    def _relay(self, stream: Any, request_id: str, kwargs: dict[str, Any], at, t0: float) -> Iterator[Any]:
        lines: list[str] = []
        for chunk in stream:
            lines.append("data: " + chunk.model_dump_json() + "\n\n")
            yield chunk
        self._log(request_id, self.incumbent, "served", kwargs, "".join(lines).encode(), None, at, t0, True)
        self._offer(request_id, kwargs)

    def _offer(self, request_id: str, kwargs: dict[str, Any]) -> None:
        if self.sample < 1.0 and random.random() >= self.sample:
            return
        try:
            self._jobs.put_nowait((request_id, kwargs))
        except queue.Full:
            self.dropped += 1

    def _log(
        self,
        request_id: str,
        model: str,
        role: str,
        kwargs: dict[str, Any],
        body: bytes | None,
        error: str | None,
        at,
        t0: float,
        stream: bool,
    ) -> None:
        if self.writer is None:
            return
        payload = {k: v for k, v in kwargs.items() if k not in ("extra_headers", "extra_query", "timeout")}
        self.writer.submit(
            Exchange(
                request_id=request_id,
                at=at,
                model=model,
                role=role,
                request_type=self.request_type,
                subject=None,
                stage=0,
                weight=0,
                stream=stream,
                payload=payload,
                body=body,
                status=None if error else 200,
                error=error,
                latency_ms=(time.perf_counter() - t0) * 1000.0,
            )
        )

    # ------------------------------------------------------------------ background

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            request_id, kwargs = job
            call = {k: v for k, v in kwargs.items() if k != "stream_options"}
            call.update(model=self.candidate_model, stream=False)
            at, t0 = now(), time.perf_counter()
            body = error = None
            try:
                body = self.candidate_client.chat.completions.create(**call).model_dump_json().encode()
            except Exception as exc:  # noqa: BLE001 - a failing candidate is data
                error = "timeout" if "Timeout" in type(exc).__name__ else type(exc).__name__
                self.failed += 1
            self.mirrored += 1
            self._log(request_id, self.candidate, "mirror", kwargs, body, error, at, t0, False)

    def close(self, timeout: float = 30.0) -> None:
        """Finish the mirrors already queued, stop the threads, write everything to the store."""
        for _ in self._threads:
            self._jobs.put(_STOP)
        for t in self._threads:
            t.join(timeout)
        if self.writer is not None:
            self.writer.close()
