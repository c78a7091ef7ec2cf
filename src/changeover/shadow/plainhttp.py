"""A lean HTTP/1.1 client for the mirror's POSTs: kept-alive asyncio streams, one request per connection at a time.

The mirror sends every sampled request a second time, so its client's CPU is the
price of mirroring. aiohttp's request machinery (timers, tracing hooks, cookie
jar, multidicts, payload writers) cost ~100 us of CPU per call on this machine;
a POST written as one buffer and an answer read with ``readuntil`` /
``readexactly`` costs a fraction of that (bench_gateway_peers: mirroring on /
off). It speaks what an OpenAI-compatible answer needs - a status line,
headers, a body by ``Content-Length``, chunked, or until the connection closes -
over plain TCP or TLS (``https://``). A kept-alive connection the server
closed while idle is retried once on a fresh one, only when nothing of the
answer was read.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD = 1 << 16  # bytes of status line and headers accepted (aiohttp's default limit too)
_NO_BODY = (204, 304)


class ProtocolFailure(Exception):
    """The server's answer was not HTTP/1.1 we can read (or it closed the connection mid-answer)."""


class ConnectFailure(Exception):
    """No connection to the server."""


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names; a repeated header keeps its last value
    pairs: list[tuple[str, str]]  # every header as sent (repeated ones too, e.g. ``Link``)
    body: bytes


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class PlainClient:
    """POSTs to one URL over a pool of idle kept-alive connections (as many as callers at once)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.netloc = parts.netloc.rsplit("@", 1)[-1]
        self._idle: list[_Conn] = []

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl, limit=MAX_HEAD, server_hostname=self.host if self.ssl else None
            )
        except OSError as exc:
            raise ConnectFailure(type(exc).__name__) from None
        return _Conn(reader, writer)

    def head(self, content: bytes, headers: dict[str, str]) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"host: {self.netloc}", f"content-length: {len(content)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def post(self, content: bytes, headers: dict[str, str], timeout: float) -> Answer:
        """One whole answer within ``timeout`` seconds (``TimeoutError`` past it)."""
        request = self.head(content, headers) + content
        async with asyncio.timeout(timeout):
            while self._idle:  # a kept-alive connection; the server may have closed it meanwhile
                conn = self._idle.pop()
                try:
                    return await self._exchange(conn, request, reused=True)
                except _Stale:
                    continue
            return await self._exchange(await self._connect(), request, reused=False)

    async def _exchange(self, conn: _Conn, request: bytes, reused: bool) -> Answer:
        keep = False
        try:
            conn.writer.write(request)
            if len(request) > MAX_HEAD:
                await conn.writer.drain()
            try:
                head = await conn.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if reused and not getattr(exc, "partial", b""):
                    raise _Stale from None
                raise ProtocolFailure("the connection closed before the answer") from None
            answer, keep = await self._read(conn.reader, head)
            return answer
        except asyncio.LimitOverrunError:
            raise ProtocolFailure(f"answer headers over {MAX_HEAD} bytes") from None
        except (asyncio.IncompleteReadError, ConnectionError):
            raise ProtocolFailure("the connection closed mid-answer") from None
        finally:
            if keep:
                self._idle.append(conn)
            else:
                conn.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader, head: bytes) -> tuple[Answer, bool]:
        lines = head.decode("latin-1").split("\r\n")
        try:
            version, code = lines[0].split(" ", 2)[:2]
            status = int(code)
        except ValueError:
            raise ProtocolFailure("not an HTTP status line") from None
        pairs: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                pairs.append((name.strip().lower(), value.strip()))
        headers = dict(pairs)
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if status in _NO_BODY or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _chunked(reader)
        elif (length := headers.get("content-length")) is not None:
            try:
                body = await reader.readexactly(int(length))
            except ValueError:
                raise ProtocolFailure("a Content-Length that is not a number") from None
        else:
            body, keep = await reader.read(), False  # the body runs to the end of the connection
        return Answer(status, headers, pairs, body), keep

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class _Stale(Exception):
    """A kept-alive connection the server had closed: nothing was read, the request is sent again."""


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolFailure("a chunk size that is not hexadecimal") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, up to the empty line
                pass
            return b"".join(parts)
        parts.append((await reader.readexactly(size + 2))[:-2])
