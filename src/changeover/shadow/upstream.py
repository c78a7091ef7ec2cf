"""One OpenAI-compatible upstream per model: a pooled aiohttp session, its URL, key and model name.

aiohttp, not httpx, on this path: measured on loopback, httpx's async pool
sustained ~200 requests/s where aiohttp sustained ~1000 against the same
upstream, and the gateway must add almost nothing to the incumbent's latency.
Mirrors go through ``shadow.plainhttp`` instead (``post_mirror``): a lean
kept-alive HTTP/1.1 client whose CPU per call is a fraction of aiohttp's, since a
mirrored request is paid for a second time. The API key is read from the
environment variable the spec names and lives only in this object's memory;
without one, the client's own Authorization header is passed through. Neither is ever logged or stored.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from changeover.errors import ProviderError
from changeover.providers.deprecation import DeprecationNotice, read_notice
from changeover.providers.params import apply_param_map
from changeover.shadow.config import Upstream
from changeover.shadow.plainhttp import ConnectFailure, PlainClient, ProtocolFailure

RELAYED_HEADERS = (
    "content-type",
    "retry-after",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)

NOTICE_HEADERS = frozenset({"deprecation", "sunset"})  # the headers a deprecation notice is read from


class UpstreamFailure(Exception):
    """The upstream gave no HTTP answer; ``kind`` is a short loggable name (never a URL or key)."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def failure_kind(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "protocol"
    return f"transport:{type(exc).__name__}"


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    notice: DeprecationNotice | None = None  # a deprecation this answer announced (headers or body)


class Stream:
    """An open 200 streaming answer: iterate ``chunks()``, then ``close()``."""

    def __init__(self, response: aiohttp.ClientResponse, notice: DeprecationNotice | None = None):
        self.response = response
        self.headers = {k: response.headers[k] for k in RELAYED_HEADERS if k in response.headers}
        self.notice = notice  # from the headers (a stream's body is read later, by the relay)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamFailure(failure_kind(exc)) from None

    def close(self) -> None:
        self.response.release()


class UpstreamClient:
    def __init__(self, name: str, config: Upstream, max_connections: int = 256):
        self.name = name
        self.config = config
        self.url = f"{config.base_url}/chat/completions"
        self.upstream_model = config.model or name
        self.max_connections = max_connections
        self._key: str | None = None
        if config.api_key_env:
            self._key = os.environ.get(config.api_key_env)
            if not self._key:
                raise ProviderError(
                    f"field 'gateway.upstreams.{name}.api_key_env': the environment variable "
                    f"{config.api_key_env} is not set; export the key before `changeover serve`"
                )
        self._session: aiohttp.ClientSession | None = None
        self._plain: PlainClient | None = None  # the mirror's client, made on first use
        self.deprecations: dict[str, int] = {}  # answers announcing a deprecation, by source (header/body)
        self.last_notice: DeprecationNotice | None = None

    def note_deprecation(self, headers: Any, body: bytes | None = None) -> DeprecationNotice | None:
        """Count a Deprecation / Sunset header or a body warning on this answer (providers.deprecation);
        the notice goes back with the answer, so the shadow log stores it."""
        pairs = headers if isinstance(headers, list) else list(headers.items())
        if (body is None or b'"warning' not in body) and not any(k.lower() in NOTICE_HEADERS for k, _ in pairs):
            return None  # the cheap test (read_notice finds nothing without these): most answers announce nothing
        notice = read_notice(pairs, body)
        if notice is not None:
            self.deprecations[notice.source] = self.deprecations.get(notice.source, 0) + 1
            self.last_notice = notice
        return notice

    @property
    def session(self) -> aiohttp.ClientSession:
        """Created on first use, inside the running event loop."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=self.config.timeout, connect=min(5.0, self.config.timeout)),
                trust_env=False,
            )
        return self._session

    def headers(self, authorization: str | None) -> dict[str, str]:
        out = {"content-type": "application/json"}
        auth = f"Bearer {self._key}" if self._key else authorization
        if auth:
            out["authorization"] = auth
        return out

    def encode(self, payload: dict[str, Any], **override: Any) -> bytes:
        body = apply_param_map({**payload, "model": self.upstream_model, **override}, self.config.params)
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    async def post(self, content: bytes, authorization: str | None, timeout: float | None = None) -> Reply:
        """A whole (non-streaming) answer; ``UpstreamFailure`` when there is none."""
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with self.session.post(self.url, data=content, headers=self.headers(authorization), **kwargs) as resp:
                body = await resp.read()
                notice = self.note_deprecation(resp.headers, body)
                relayed = {k: resp.headers[k] for k in RELAYED_HEADERS if k in resp.headers}
                return Reply(resp.status, body, relayed, notice)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamFailure(failure_kind(exc)) from None

    async def post_mirror(self, content: bytes, authorization: str | None, timeout: float) -> Reply:
        """A mirrored (non-streaming) answer through the lean client; ``UpstreamFailure`` when there is
        none, with the same kinds as ``post``."""
        if self._plain is None:
            self._plain = PlainClient(self.url)
        try:
            answer = await self._plain.post(content, self.headers(authorization), timeout)
        except TimeoutError:
            raise UpstreamFailure("timeout") from None
        except ConnectFailure:
            raise UpstreamFailure("connect") from None
        except ProtocolFailure:
            raise UpstreamFailure("protocol") from None
        except OSError as exc:
            raise UpstreamFailure(f"transport:{type(exc).__name__}") from None
        notice = self.note_deprecation(answer.pairs, answer.body)
        relayed = {k: answer.headers[k] for k in RELAYED_HEADERS if k in answer.headers}
        return Reply(answer.status, answer.body, relayed, notice)

    async def open_stream(self, content: bytes, authorization: str | None) -> Stream | Reply:
        """A ``Stream`` for a 200 answer, else the whole non-200 ``Reply``."""
        timeout = aiohttp.ClientTimeout(
            total=None, connect=min(5.0, self.config.timeout), sock_read=self.config.timeout
        )
        try:
            resp = await self.session.post(self.url, data=content, headers=self.headers(authorization), timeout=timeout)
            if resp.status != 200:
                try:
                    body = await resp.read()
                finally:
                    resp.release()
                return Reply(resp.status, body, {k: resp.headers[k] for k in RELAYED_HEADERS if k in resp.headers})
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamFailure(failure_kind(exc)) from None
        return Stream(resp, self.note_deprecation(resp.headers))

    async def aclose(self) -> None:
        if self._plain is not None:
            self._plain.close()
        if self._session is not None:
            await self._session.close()
