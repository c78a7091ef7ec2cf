"""One JSON POST to a model endpoint, with HTTP failures sorted into retryable or not.

Shared by the OpenAI-compatible and Anthropic providers. Error messages carry
the status and the server's own message, never request headers (API keys).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from changeover.providers.base import CallFailed, retry_after_seconds

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


def make_client(base_url: str, headers: dict[str, str], concurrency: int,
                timeout_s: float) -> httpx.AsyncClient:
    """An async HTTP client with a connection pool sized to the model's concurrency."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=base_url.rstrip("/") + "/", headers=headers, limits=limits,
                             timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)))


def _server_message(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return resp.text[:200]
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)[:200]
    return str(err or data)[:200]


async def post_json(client: httpx.AsyncClient, path: str,
                    body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """POST ``body``; returns (parsed JSON, latency in ms) or raises CallFailed."""
    start = time.perf_counter()
    try:
        resp = await client.post(path, json=body)
    except httpx.TimeoutException:
        raise CallFailed("timed out", retryable=True) from None
    except httpx.TransportError as exc:
        raise CallFailed(f"connection failed ({type(exc).__name__})", retryable=True) from None
    latency_ms = (time.perf_counter() - start) * 1000.0
    if resp.status_code >= 400:
        raise CallFailed(f"HTTP {resp.status_code}: {_server_message(resp)}",
                         retryable=resp.status_code in RETRYABLE_STATUS, status=resp.status_code,
                         retry_after=retry_after_seconds(resp.headers.get("retry-after")))
    try:
        data = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CallFailed(f"malformed response body (not JSON): {resp.text[:80]!r}", retryable=True,
                         status=resp.status_code) from None
    if not isinstance(data, dict):
        raise CallFailed("malformed response body (not a JSON object)", retryable=True)
    return data, latency_ms
