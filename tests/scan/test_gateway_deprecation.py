"""The gateway counts upstream deprecation notices in /metrics (a real upstream on loopback sends them)."""

from __future__ import annotations

import time

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.gateway.helpers import GatewayServer, write_spec
from tests.support.serving import serve_in_thread

from changeover.store import open_store

WARNING = (
    "This model version is deprecated. Migrate before January 4, 2024 to avoid disruption of service. "
    "Learn more https://platform.openai.com/docs/deprecations"
)


async def chat(request: Request) -> JSONResponse:
    body = await request.json()
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
    if body["model"] == "old":  # RFC 9745 + RFC 8594 headers
        headers = {"Deprecation": "@1735689600", "Sunset": "Wed, 01 Oct 2025 00:00:00 GMT"}
        return JSONResponse(answer, headers=headers)
    return JSONResponse({**answer, "warning": WARNING})  # the OpenAI-style body warning


def test_deprecation_notices_counted_in_metrics(tmp_path):
    upstream, thread, port = serve_in_thread(
        Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])]), "upstream"
    )
    spec = write_spec(tmp_path / "migration.yaml", f"http://127.0.0.1:{port}/v1")
    with open_store(f"sqlite:///{tmp_path / 'gw.db'}") as store:
        gw = GatewayServer(spec, store).start()
        try:
            for _ in range(3):
                r = httpx.post(
                    gw.url + "/v1/chat/completions",
                    json={"model": "x", "messages": [{"role": "user", "content": "Capital of France?"}]},
                )
                assert r.status_code == 200
            deadline = time.monotonic() + 20
            while True:  # the mirrored calls to "new" finish off the request path
                text = httpx.get(gw.url + "/metrics").text
                if (
                    'changeover_upstream_deprecations_total{model="new",source="body"} 3' in text
                    or time.monotonic() > deadline
                ):
                    break
                time.sleep(0.02)
        finally:
            gw.stop()
            upstream.should_exit = True
            thread.join(timeout=10)
    assert 'changeover_upstream_deprecations_total{model="old",source="header"} 3' in text
    assert 'changeover_upstream_deprecations_total{model="new",source="body"} 3' in text
    assert 'changeover_upstream_sunset{model="old",date="2025-10-01"} 1' in text
    assert 'changeover_upstream_sunset{model="new",date="2024-01-04"} 1' in text
    assert "# TYPE changeover_upstream_deprecations_total counter" in text
