"""Upstream deprecation notices reach the shadow log and the shadow report (JSON and text).

The upstream is a real HTTP server on loopback that answers chat completions the
way a provider retiring a model does: ``Deprecation`` (RFC 9745), ``Sunset``
(RFC 8594) and ``Link: rel="deprecation"`` headers on the incumbent's answers,
none on the candidate's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from tests.gateway.helpers import chat, write_spec
from tests.support.serving import serve_in_thread

from changeover.cli import run
from changeover.shadowlog.answers import load_answers

SUNSET = "Sat, 14 Feb 2026 00:00:00 GMT"
RETIRING = {
    "deprecation": "@1735689600",  # 2025-01-01T00:00:00Z
    "sunset": SUNSET,
    "link": '<https://platform.example.com/docs/deprecations>; rel="deprecation"',
}


async def completions(request: Request) -> Response:
    body = await request.json()
    model = body["model"]
    headers = RETIRING if model == "old" else {}
    message = {"role": "assistant", "content": f"{model} says Paris."}
    usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    if body.get("stream"):

        def events() -> Iterator[bytes]:
            chunk = {"id": "c1", "object": "chat.completion.chunk", "model": model, "choices": []}
            delta = {**chunk, "choices": [{"index": 0, "delta": message, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(delta)}\n\n".encode()
            yield f"data: {json.dumps({**chunk, 'usage': usage})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    answer = {"id": "c1", "object": "chat.completion", "model": model, "choices": [choice], "usage": usage}
    return JSONResponse(answer, headers=headers)


@pytest.fixture
def retiring_upstream() -> Iterator[str]:
    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    server, thread, port = serve_in_thread(app, name="retiring-upstream")
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_deprecation_headers_are_logged_and_reported(retiring_upstream, tmp_path, serve, gw_store, sqlite_url, capsys):
    spec = write_spec(tmp_path / "migration.yaml", retiring_upstream)
    gw = serve(spec)
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        for i in range(4):
            assert client.post("/v1/chat/completions", json=chat(f"q{i}")).status_code == 200
        streamed = client.post("/v1/chat/completions", json=chat("q-stream", stream=True))
        assert streamed.status_code == 200 and "old says Paris." in streamed.text
    wait_for(lambda: gw.service.gateway.mirror.sent["new"] == 5)
    gw.stop()  # drains the writer

    answers = load_answers(gw_store)
    old = [a for a in answers if a.model == "old"]
    new = [a for a in answers if a.model == "new"]
    assert len(old) == 5 and len(new) == 5
    assert all(a.deprecation is not None for a in old)  # streamed and whole answers alike
    assert old[0].deprecation == {
        "source": "header",
        "deprecated_at": "2025-01-01T00:00:00+00:00",
        "sunset": "2026-02-14T00:00:00+00:00",
        "link": "https://platform.example.com/docs/deprecations",
    }
    assert all(a.deprecation is None for a in new)

    out = tmp_path / "shadow.json"
    assert run(["shadow", "report", "--spec", str(spec), "--db", sqlite_url, "--json", str(out)]) == 0
    overall = next(r for r in json.loads(out.read_text())["rows"] if r["request_type"] == "all")
    assert overall["incumbent_stats"]["deprecations"] == {"answers": 5, "earliest_sunset": "2026-02-14T00:00:00+00:00"}
    assert overall["candidate_stats"]["deprecations"] == {"answers": 0, "earliest_sunset": None}
    printed = capsys.readouterr().out
    assert "deprecation notices" in printed and "0 (5 sunset 2026-02-14)" in printed
