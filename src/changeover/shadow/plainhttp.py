"""A lean HTTP/1.1 client for the mirror's POSTs: kept-alive connections, one request per connection at a time.

The mirror sends every sampled request a second time, so its client's CPU is the
price of mirroring. aiohttp's request machinery (timers, tracing hooks, cookie
jar, multidicts, payload writers) cost ~100 us of CPU per call on this machine;
a POST written as one buffer and an answer gathered by an ``asyncio.Protocol``
until it is whole (one future per answer) costs a fraction of that
(bench_gateway_peers: mirroring on / off). It speaks what an OpenAI-compatible
answer needs - a status line, headers, a body by ``Content-Length``, chunked,
or until the connection closes - over plain TCP or TLS (``https://``). A
kept-alive connection the server closed while idle is retried once on a fresh
one, only when nothing of the answer was read.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD = 1 << 16  # bytes of status line and headers accepted (aiohttp's default limit too)
_NO_BODY = (204, 304)
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class ProtocolFailure(Exception):
    """The server's answer was not HTTP/1.1 we can read (or it closed the connection mid-answer)."""


class ConnectFailure(Exception):
    """No connection to the server."""


class _Stale(Exception):
    """A kept-alive connection the server had closed: nothing was read, the request is sent again."""


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names; a repeated header keeps its last value
    pairs: list[tuple[str, str]]  # every header as sent (repeated ones too, e.g. ``Link``)
    body: bytes


Head = tuple[int, dict[str, str], list[tuple[str, str]], bool]  # status, headers, pairs, body runs to the close


def _no_body(status: int) -> bool:
    return status in _NO_BODY or 100 <= status < 200


def _parse_head(head: bytes) -> Head:
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
    lengths = {v for k, v in pairs if k == "content-length"}
    length = headers.get("content-length")
    if length is not None and (len(lengths) > 1 or not _DIGITS.fullmatch(length)):
        raise ProtocolFailure("a Content-Length that is not one number")
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    until_close = not _no_body(status) and length is None and not chunked
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close" and not until_close
    headers["\0keep"] = "1" if keep else ""  # read back by _Conn, removed before the answer leaves
    return status, headers, pairs, until_close


def _dechunk(buf: bytearray, at: int) -> bytes | None:
    """The body of a chunked answer starting at ``at``, or None while it is not whole."""
    parts: list[bytes] = []
    while True:
        line_end = buf.find(b"\r\n", at)
        if line_end < 0:
            return None
        token = bytes(buf[at:line_end]).split(b";", 1)[0].strip()
        if not _HEX.fullmatch(token):  # int(..., 16) would take a sign, "0x" or "_": a loop or a wrong size
            raise ProtocolFailure("a chunk size that is not hexadecimal")
        size = int(token, 16)
        at = line_end + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", at - 2)  # trailers (usually none), up to the empty line
            return b"".join(parts) if end >= 0 else None
        if len(buf) < at + size + 2:
            return None
        if buf[at + size : at + size + 2] != b"\r\n":
            raise ProtocolFailure("a chunk longer than its size")
        parts.append(bytes(buf[at : at + size]))
        at += size + 2


class _Conn(asyncio.Protocol):
    """One kept-alive connection; ``data_received`` gathers an answer until it is whole, then wakes the caller."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Answer] | None = None
        self.head: Head | None = None
        self.body_at = 0
        self.closed = False
        self.keep = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.head is not None and self.head[3]:  # the body ran to the close: it is whole now
            waiter.set_result(self._whole(bytes(self.buffer[self.body_at :])))
        elif not self.buffer:
            waiter.set_exception(_Stale())
        else:
            waiter.set_exception(ProtocolFailure("the connection closed mid-answer"))

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        self.buffer.clear()
        self.head, self.keep = None, False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)  # type: ignore[union-attr]
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        try:
            answer = self._answer()
        except ProtocolFailure as exc:
            waiter.set_exception(exc)
            return
        if answer is not None:
            waiter.set_result(answer)

    def _whole(self, body: bytes) -> Answer:
        status, headers, pairs, _ = self.head  # type: ignore[misc]
        self.keep = bool(headers.pop("\0keep", ""))
        return Answer(status, headers, pairs, body)

    def _answer(self) -> Answer | None:
        """The whole answer once it is in the buffer, else None."""
        buf = self.buffer
        while self.head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ProtocolFailure(f"answer headers over {MAX_HEAD} bytes")
                return None
            self.head = _parse_head(bytes(buf[:end]))
            self.body_at = end + 4
            status = self.head[0]
            if status == 101:
                raise ProtocolFailure("the server switched protocols")
            if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
                del buf[: self.body_at]
                self.head, self.body_at = None, 0
        status, headers, _, until_close = self.head
        if _no_body(status):
            return self._whole(b"")
        if until_close:
            return None  # whole at connection_lost
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = _dechunk(buf, self.body_at)
            return None if body is None else self._whole(body)
        end = self.body_at + int(headers["content-length"])
        return self._whole(bytes(buf[self.body_at : end])) if len(buf) >= end else None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


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
        self._heads: dict[tuple[tuple[str, str], ...], bytes] = {}  # fixed request heads, by header set

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                _Conn, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
            )
        except OSError as exc:
            raise ConnectFailure(type(exc).__name__) from None
        return conn

    def head(self, content: bytes, headers: dict[str, str]) -> bytes:
        """The request head; its fixed part (all but credentials and length) is made once per header set -
        an Authorization header is never kept past the call."""
        fixed = tuple((k, v) for k, v in headers.items() if k != "authorization")
        start = self._heads.get(fixed)
        if start is None:
            lines = [f"POST {self.path} HTTP/1.1", f"host: {self.netloc}", "accept-encoding: identity"]
            lines += [f"{k}: {v}" for k, v in fixed]
            start = ("\r\n".join(lines) + "\r\n").encode()
            if len(self._heads) >= 64:
                self._heads.clear()
            self._heads[fixed] = start
        auth = headers.get("authorization")
        tail = b"content-length: %d\r\n\r\n" % len(content)
        return start + (f"authorization: {auth}\r\n".encode() + tail if auth else tail)

    async def post(self, content: bytes, headers: dict[str, str], timeout: float) -> Answer:
        """One whole answer within ``timeout`` seconds (``TimeoutError`` past it)."""
        request = self.head(content, headers) + content
        async with asyncio.timeout(timeout):
            while self._idle:  # a kept-alive connection; the server may have closed it meanwhile
                conn = self._idle.pop()
                if conn.closed:
                    continue
                try:
                    return await self._exchange(conn, request)
                except _Stale:
                    continue
            try:
                return await self._exchange(await self._connect(), request)
            except _Stale:
                raise ProtocolFailure("the connection closed before the answer") from None

    async def _exchange(self, conn: _Conn, request: bytes) -> Answer:
        keep = False
        try:
            answer = await conn.send(request)
            keep = conn.keep and not conn.closed
            return answer
        finally:
            conn.waiter = None
            if keep:
                self._idle.append(conn)
            else:
                conn.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
