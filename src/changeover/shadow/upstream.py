"""One OpenAI-compatible upstream per model: a pooled httpx client, its URL, key and model name.

The API key is read from the environment variable the spec names and lives only
in this object's memory; without one, the client's own Authorization header is
passed through. Neither is ever logged or stored.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

from changeover.errors import ProviderError
from changeover.shadow.config import Upstream


def failure_kind(exc: Exception) -> str:
    """A short, loggable name for a transport failure (never the exception's text, which may hold URLs)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol"
    return f"transport:{type(exc).__name__}"


class UpstreamClient:
    def __init__(self, name: str, config: Upstream, max_connections: int = 256):
        self.name = name
        self.config = config
        self.url = f"{config.base_url}/chat/completions"
        self.upstream_model = config.model or name
        self._key: str | None = None
        if config.api_key_env:
            self._key = os.environ.get(config.api_key_env)
            if not self._key:
                raise ProviderError(
                    f"field 'gateway.upstreams.{name}.api_key_env': the environment variable "
                    f"{config.api_key_env} is not set; export the key before `changeover serve`"
                )
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout, connect=min(5.0, config.timeout)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            trust_env=False,
        )

    def headers(self, authorization: str | None) -> dict[str, str]:
        out = {"content-type": "application/json"}
        auth = f"Bearer {self._key}" if self._key else authorization
        if auth:
            out["authorization"] = auth
        return out

    def encode(self, payload: dict[str, Any], **override: Any) -> bytes:
        body = {**payload, "model": self.upstream_model, **override}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    async def post(self, content: bytes, authorization: str | None, timeout: float | None = None) -> httpx.Response:
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        return await self.http.post(self.url, content=content, headers=self.headers(authorization), **kwargs)

    async def open_stream(self, content: bytes, authorization: str | None) -> httpx.Response:
        request = self.http.build_request("POST", self.url, content=content, headers=self.headers(authorization))
        return await self.http.send(request, stream=True)

    async def aclose(self) -> None:
        await self.http.aclose()
