"""One JSON POST to a model endpoint, with HTTP failures sorted into retryable or not.

Shared by the OpenAI-compatible and Anthropic providers. Error messages carry
the status and the server's own message, never request headers (API keys).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from changeover.providers.base import CallFailed, retry_after_seconds

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}
_KEYLIKE = re.compile(r"\b(sk|pk|rk|key|api|token)[-_][A-Za-z0-9_\-*]{8,}", re.I)
_SECRET_HEADERS = {"authorization", "x-api-key", "api-key"}


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client: loading the CA bundle costs ~25 ms each time."""
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()


class ClientPool:
    """Several small httpx clients used round-robin by load, standing in for one big one.

    httpcore's connection pool gets slower per request as it grows: measured
    here against a loopback server, one AsyncClient with 200 connections did
    ~90 requests/s, while 50 clients of 4 connections did ~560/s on the same
    CPU. Each shard holds at most ``SHARD_CONNECTIONS`` connections.
    """

    SHARD_CONNECTIONS = 4

    def __init__(self, base_url: str, headers: dict[str, str], concurrency: int, timeout_s: float):
        shards = max(1, -(-concurrency // self.SHARD_CONNECTIONS))
        per = max(1, -(-concurrency // shards))
        limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self._shards = [
            httpx.AsyncClient(
                base_url=base_url.rstrip("/") + "/", headers=headers, limits=limits, timeout=timeout, verify=_tls()
            )
            for _ in range(shards)
        ]
        self._busy = [0] * shards
        self.secrets = [
            v.removeprefix("Bearer ").strip() for k, v in headers.items() if k.lower() in _SECRET_HEADERS and v.strip()
        ]

    @contextlib.contextmanager
    def _shard(self) -> Iterator[httpx.AsyncClient]:
        i = min(range(len(self._shards)), key=self._busy.__getitem__)
        self._busy[i] += 1
        try:
            yield self._shards[i]
        finally:
            self._busy[i] -= 1

    async def post(self, path: str, json: Any) -> httpx.Response:
        with self._shard() as shard:
            return await shard.post(path, json=json)

    @contextlib.asynccontextmanager
    async def stream(self, path: str, json: Any) -> AsyncIterator[httpx.Response]:
        with self._shard() as shard:
            async with shard.stream("POST", path, json=json) as resp:
                yield resp

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def make_client(base_url: str, headers: dict[str, str], concurrency: int, timeout_s: float) -> ClientPool:
    """An async HTTP client sized to the model's concurrency."""
    return ClientPool(base_url, headers, concurrency, timeout_s)


def redact(text: str, secrets: list[str]) -> str:
    """Hide API keys a server may echo in an error message (the exact key, and key-like tokens)."""
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)


def _error_body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return resp.text[:2000]


def _server_message(data: Any) -> str:
    if not isinstance(data, dict):
        return str(data)[:200]
    err = data.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err)[:200]
    return str(err or data.get("message") or data)[:200]


def _failed(resp: httpx.Response, secrets: list[str]) -> CallFailed:
    body = _error_body(resp)
    return CallFailed(
        f"HTTP {resp.status_code}: {redact(_server_message(body), secrets)}",
        retryable=resp.status_code in RETRYABLE_STATUS,
        status=resp.status_code,
        retry_after=retry_after_seconds(resp.headers.get("retry-after")),
        body=body if resp.status_code in (400, 422) else None,
    )


@contextlib.contextmanager
def _transport_errors() -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException:
        raise CallFailed("timed out", retryable=True) from None
    except httpx.TransportError as exc:
        raise CallFailed(f"connection failed ({type(exc).__name__})", retryable=True) from None


async def post_json(client: ClientPool, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """POST ``body``; returns (parsed JSON, latency in ms) or raises CallFailed."""
    start = time.perf_counter()
    with _transport_errors():
        resp = await client.post(path, json=body)
    latency_ms = (time.perf_counter() - start) * 1000.0
    if resp.status_code >= 400:
        raise _failed(resp, client.secrets)
    try:
        data = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CallFailed(
            f"malformed response body (not JSON): {redact(resp.text[:80], client.secrets)!r}",
            retryable=True,
            status=resp.status_code,
        ) from None
    if not isinstance(data, dict):
        raise CallFailed("malformed response body (not a JSON object)", retryable=True)
    return data, latency_ms


async def post_sse(
    client: ClientPool, path: str, body: dict[str, Any]
) -> tuple[list[dict[str, Any]], float, float | None]:
    """POST a streaming request; returns (events, latency ms, time to first content ms).

    A stream that breaks off, carries an unparseable event or ends without
    ``data: [DONE]`` is a retryable failure, like a malformed body.
    """
    start = time.perf_counter()
    events: list[dict[str, Any]] = []
    first: float | None = None
    done = False
    with _transport_errors():
        async with client.stream(path, json=body) as resp:
            if resp.status_code >= 400:
                await resp.aread()
                raise _failed(resp, client.secrets)
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                try:
                    event = json.loads(data)
                except json.JSONDecodeError:
                    event = None
                if not isinstance(event, dict):
                    raise CallFailed(f"malformed stream event: {redact(data[:60], client.secrets)!r}", retryable=True)
                if first is None and any(
                    (c.get("delta") or {}).get("content") for c in event.get("choices") or [] if isinstance(c, dict)
                ):
                    first = (time.perf_counter() - start) * 1000.0
                events.append(event)
    if not done:
        raise CallFailed("the stream ended without 'data: [DONE]'", retryable=True)
    return events, (time.perf_counter() - start) * 1000.0, first
