"""Build ``Exchange`` objects (what the request path hands the writer) for tests that bypass HTTP."""

from __future__ import annotations

import json
from datetime import datetime

from changeover.shadow.exchange import Exchange
from changeover.store.events import now


def completion(text: str, tokens_in: int = 12, tokens_out: int = 8) -> bytes:
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out},
        }
    ).encode()


def exchange(
    request_id: str,
    model: str,
    role: str = "served",
    *,
    text: str = "Paris is the capital.",
    error: str | None = None,
    status: int = 200,
    latency: float = 100.0,
    subject: str | None = None,
    request_type: str = "default",
    at: datetime | None = None,
    payload: dict | None = None,
    stage: int = 0,
    weight: int = 0,
) -> Exchange:
    body = None if error else completion(text)
    return Exchange(
        request_id=request_id,
        at=at or now(),
        model=model,
        role=role,
        request_type=request_type,
        subject=subject or f"user-{request_id}",
        stage=stage,
        weight=weight,
        stream=False,
        payload=payload or {"messages": [{"role": "user", "content": "capital of France?"}]},
        body=body,
        status=None if error else status,
        error=error,
        latency_ms=latency,
    )
