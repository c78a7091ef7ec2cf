"""The mirror's lean HTTP/1.1 client (shadow.plainhttp) against a real server on loopback that answers
each request the way a test scripts it: by length, chunked, until close, not at all, or with garbage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from changeover.shadow.config import Upstream
from changeover.shadow.plainhttp import ConnectFailure, PlainClient, ProtocolFailure
from changeover.shadow.upstream import UpstreamClient, UpstreamFailure

Script = Callable[[int, bytes], bytes | None]  # (request number, request) -> what to write, None: hang


async def serve(script: Script, close_after: bool = False) -> tuple[asyncio.Server, list[bytes], list[int]]:
    """A server writing the scripted answer to each request; ``accepted`` counts connections."""
    seen: list[bytes] = []
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(x for x in head.split(b"\r\n") if x.startswith(b"content-length:")).split(b":")[1])
                request = head + await reader.readexactly(length)
                seen.append(request)
                answer = script(len(seen), request)
                if answer is None:
                    await asyncio.sleep(3600)
                writer.write(answer)
                await writer.drain()
                if close_after or b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen, accepted


def url(server: asyncio.Server) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"


def by_length(body: bytes, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{extra}content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def run(coro):
    return asyncio.run(coro)


def test_answers_by_length_on_one_kept_alive_connection() -> None:
    async def go() -> None:
        server, seen, accepted = await serve(lambda n, _: by_length(b'{"n":%d}' % n))
        client = PlainClient(url(server))
        answers = [
            await client.post(b'{"q":1}', {"content-type": "application/json", "authorization": "Bearer k"}, 5)
            for _ in range(3)
        ]
        assert [a.body for a in answers] == [b'{"n":1}', b'{"n":2}', b'{"n":3}']
        assert answers[0].status == 200 and answers[0].headers["content-type"] == "application/json"
        assert len(accepted) == 1  # kept alive
        assert seen[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert b"authorization: Bearer k\r\n" in seen[0] and seen[0].endswith(b'\r\n\r\n{"q":1}')
        client.close()
        server.close()

    run(go())


def test_chunked_and_until_close_bodies_and_repeated_headers() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nlink: <a>; rel=x\r\nLink: <b>; rel=y\r\n\r\n"
        b'4\r\n{"a"\r\n6;ext=1\r\n:true}\r\n0\r\n\r\n'
    )
    closing = b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"whole":1}'

    async def go() -> None:
        server, _, accepted = await serve(lambda n, _: chunked if n == 1 else closing)
        client = PlainClient(url(server))
        first = await client.post(b"{}", {}, 5)
        assert first.body == b'{"a":true}' and [v for k, v in first.pairs if k == "link"] == [
            "<a>; rel=x",
            "<b>; rel=y",
        ]
        second = await client.post(b"{}", {}, 5)
        assert second.body == b'{"whole":1}'
        server.close()

    run(go())


def test_a_connection_closed_while_idle_is_retried_once_on_a_fresh_one() -> None:
    async def go() -> None:
        server, seen, accepted = await serve(lambda n, _: by_length(b"ok"), close_after=True)
        client = PlainClient(url(server))
        assert (await client.post(b"{}", {}, 5)).body == b"ok"
        await asyncio.sleep(0.05)  # the server's close reaches the idle connection (or not: both paths retry)
        assert (await client.post(b"{}", {}, 5)).body == b"ok"
        assert len(accepted) == 2 and len(seen) == 2  # the request reached the server once per answer
        server.close()

    run(go())


def test_failures_map_to_the_kinds_the_log_records(monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> None:
        hang, _, _ = await serve(lambda n, _: None)
        garbage, _, _ = await serve(lambda n, _: b"NOT HTTP\r\n\r\n")
        cut, _, _ = await serve(
            lambda n, _: b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\nshort"
        )
        with pytest.raises(TimeoutError):
            await PlainClient(url(hang)).post(b"{}", {}, 0.2)
        with pytest.raises(ProtocolFailure):
            await PlainClient(url(garbage)).post(b"{}", {}, 5)
        with pytest.raises(ProtocolFailure):
            await PlainClient(url(cut)).post(b"{}", {}, 5)
        free = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        gone = url(free)
        free.close()
        await free.wait_closed()
        with pytest.raises(ConnectFailure):
            await PlainClient(gone).post(b"{}", {}, 5)
        kinds = []
        for target, timeout in ((hang, 0.2), (garbage, 5.0)):
            upstream = UpstreamClient("new", Upstream(base_url=url(target).removesuffix("/chat/completions")))
            try:
                await upstream.post_mirror(b"{}", None, timeout)
            except UpstreamFailure as exc:
                kinds.append(exc.kind)
            await upstream.aclose()
        assert kinds == ["timeout", "protocol"]
        for s in (hang, garbage, cut):
            s.close()

    run(go())


def test_a_deprecation_header_on_a_mirrored_answer_is_noted() -> None:
    async def go() -> None:
        server, _, _ = await serve(
            lambda n, _: by_length(b"{}", "Deprecation: true\r\nSunset: Wed, 01 Jul 2026 00:00:00 GMT\r\n")
        )
        upstream = UpstreamClient("new", Upstream(base_url=url(server).removesuffix("/chat/completions")))
        reply = await upstream.post_mirror(b"{}", None, 5)
        assert reply.status == 200 and reply.notice is not None and reply.notice.source == "header"
        assert upstream.deprecations == {"header": 1}
        await upstream.aclose()
        server.close()

    run(go())


def test_interim_answers_are_skipped_and_bad_framing_is_a_failure_not_a_loop() -> None:
    """A 100/103 before the real answer is read past (not taken for it); a signed or "0x" chunk size,
    a chunk longer than its size and two different Content-Lengths are protocol failures."""
    interim = b"HTTP/1.1 103 Early Hints\r\nlink: </x>; rel=preload\r\n\r\n" + by_length(b'{"real":1}')
    bad = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n-6\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc",
    ]

    async def go() -> None:
        server, seen, _ = await serve(lambda n, _: interim if n == 1 else by_length(b'{"next":2}'))
        client = PlainClient(url(server))
        first = await client.post(b"{}", {}, 5)
        assert (first.status, first.body) == (200, b'{"real":1}')
        second = await client.post(b"{}", {}, 5)  # the same connection, in step with its answers
        assert second.body == b'{"next":2}' and len(seen) == 2
        assert b"accept-encoding: identity" in seen[0]  # a gzip-by-default proxy sends plain bytes
        server.close()
        for answer in bad:
            broken, _, _ = await serve(lambda n, _, a=answer: a)
            with pytest.raises(ProtocolFailure):
                await PlainClient(url(broken)).post(b"{}", {}, 5)
            broken.close()

    run(go())
