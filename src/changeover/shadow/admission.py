"""Admission control: a bounded number of chat requests in flight; beyond it a fast 503 with ``Retry-After``.

A gateway that queues every request it accepts lets latency grow without bound
under overload (measured: p99 ~200 ms at 64 connections and throughput 10%
lower than at 16). ``Admission`` wraps the ASGI app and counts the chat
completions being served - from the request's arrival until the last byte of
its answer, streams included. When ``gateway.max_in_flight`` are in flight, a
new one is answered at once with 503, OpenAI's error shape and
``Retry-After: gateway.retry_after`` seconds (the OpenAI SDKs honour it), and
counted in ``changeover_rejected_total{reason="overloaded"}``. Nothing is
forwarded, mirrored or logged for it. Other paths (health, metrics, admin) are
never refused, so an overloaded gateway can still be watched and rolled back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from changeover.shadow.metrics import Metrics
from changeover.shadow.wire import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})


@dataclass(slots=True)
class Load:
    """The chat requests in flight and the bound on them (``/metrics`` shows ``in_flight``)."""

    limit: int
    retry_after: float
    in_flight: int = 0

    def gauges(self) -> dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]]:
        return {
            "changeover_in_flight": ("Chat requests being served now.", {(): float(self.in_flight)}),
            "changeover_max_in_flight": (
                "Chat requests served at once before a 503 with Retry-After (gateway.max_in_flight).",
                {(): float(self.limit)},
            ),
        }


class Admission:
    """ASGI middleware admitting at most ``load.limit`` chat requests at once."""

    def __init__(self, app: ASGIApp, load: Load, metrics: Metrics):
        self.app, self.load, self.metrics = app, load, metrics
        self.retry_after = str(max(1, math.ceil(load.retry_after)))  # Retry-After takes whole seconds
        self._refusal = json.dumps(
            error_body(
                f"the gateway is serving its limit of {load.limit} requests; retry after {self.retry_after} s",
                "server_overloaded",
                "overloaded",
            )
        ).encode()

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") not in CHAT_PATHS:
            await self.app(scope, receive, send)
            return
        load = self.load
        if load.in_flight >= load.limit:
            self.metrics.reject("overloaded")
            await self._refuse(send)
            return
        load.in_flight += 1  # one event loop: nothing runs between the check and the increment
        try:
            await self.app(scope, receive, send)
        finally:
            load.in_flight -= 1

    async def _refuse(self, send: Callable[[Message], Awaitable[None]]) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._refusal)).encode()),
            (b"retry-after", self.retry_after.encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": self._refusal})
