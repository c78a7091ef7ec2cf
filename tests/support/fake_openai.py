"""A real OpenAI-compatible HTTP server on loopback, standing in for hosted model APIs in tests.

It speaks the real wire protocol over a real socket (Starlette + uvicorn in a
background thread, TCP_NODELAY): ``POST /v1/chat/completions`` (JSON, and SSE
streaming ending in ``data: [DONE]``), ``POST /v1/completions`` (text),
``GET /v1/models``, and Anthropic's ``POST /v1/messages``. Each model's
behaviour is configurable: latency, failures (500s, 429s with Retry-After, a
failure rate or the first N calls), hangs (never answers), malformed bodies or
streams, canned / echo / computed replies, tool calls, API-key checks and
usage token counts, request parameters refused with a 400 (``reject_params``,
the body OpenAI sends). Every call is counted per model and per request content,
so tests can assert that nothing was called twice.

    with FakeOpenAI() as fake:
        fake.set("gpt-old", latency=0.05, reply="Paris")
        fake.set("gpt-new", fail_status=500, fail_rate=1.0)
        client = openai.OpenAI(base_url=fake.base_url, api_key="test")
        ...
        assert fake.calls["gpt-old"] == 10
        assert not fake.duplicates()
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Reply = str | Callable[[dict[str, Any]], str] | None

# What OpenAI answers a reasoning model sent ``max_tokens`` or a non-default ``temperature``.
UNSUPPORTED_MAX_TOKENS = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
)
UNSUPPORTED_TEMPERATURE = (
    "Unsupported value: 'temperature' does not support 0 with this model. Only the default (1) value is supported."
)


@dataclass
class Behaviour:
    """How one model answers. ``reply=None`` echoes the last user message."""

    latency: float = 0.0  # seconds before the answer (or the first chunk)
    reply: Reply = None  # canned text, a function of the request body, or None = echo
    finish_reason: str = "stop"
    fail_rate: float = 0.0  # probability that a call fails with fail_status
    fail_first: int = 0  # the first N calls fail with fail_status
    fail_status: int = 500
    retry_after: float | None = None  # Retry-After header (seconds) on failures (e.g. with 429)
    hang: bool = False  # never answer (until the server stops)
    hang_rate: float = 0.0  # probability that a call hangs
    malformed: str | None = None  # "json" (not JSON), "schema" (JSON without choices), "sse"
    malformed_rate: float = 1.0  # probability of a malformed body when ``malformed`` is set
    stream_chunk_delay: float = 0.0  # seconds between SSE chunks
    gate: threading.Event | None = None  # answer only once the event is set (a test holds requests in flight)
    stream_gate: threading.Event | None = None  # a stream holds its last chunk until the event is set
    api_key: str | None = None  # if set, the Bearer token / x-api-key that must be sent
    fail_message: str | None = None  # error message; "{key}" becomes the key the client sent
    tool_calls: Callable[[dict[str, Any]], list[dict[str, Any]] | None] | None = None  # chat: call tools
    # request parameters this model refuses with a 400 naming them, as a newer API does: name -> message
    reject_params: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One request the server received."""

    model: str
    path: str
    body: dict[str, Any]
    at: float
    headers: dict[str, str] = field(default_factory=dict)


def count_tokens(text: str) -> int:
    """A crude, deterministic token count (whitespace words) for ``usage``."""
    return len(text.split())


def _messages_text(body: dict[str, Any]) -> str:
    parts = []
    system = body.get("system")
    if isinstance(system, str):
        parts.append(system)
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def _last_user(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content)
    return ""


def call_key(model: str, body: dict[str, Any]) -> str:
    """What makes two calls 'the same call': model + messages + generation parameters."""
    relevant = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    return model + "|" + json.dumps(relevant, sort_keys=True, ensure_ascii=False)


def _completion(
    cid: str, model: str, message: dict[str, Any], finish_reason: str, usage: dict[str, int]
) -> JSONResponse:
    """A chat.completion body with one choice."""
    return JSONResponse(
        {
            "id": cid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
            "usage": usage,
        }
    )


class FakeOpenAI:
    """An OpenAI-compatible (and Anthropic-messages) server on 127.0.0.1, in a thread.

    ``base_url`` ends in ``/v1`` (what the OpenAI SDK wants); ``root_url`` does not.
    Behaviours can be changed while the server runs (``set``, ``default``).
    """

    def __init__(
        self,
        models: dict[str, Behaviour] | None = None,
        default: Behaviour | None = None,
        seed: int = 0,
        strict_models: bool = False,
    ):
        self.behaviours: dict[str, Behaviour] = dict(models or {})
        self.default = default or Behaviour()
        self.strict_models = strict_models
        self.rng = random.Random(seed)
        self.calls: Counter[str] = Counter()  # model -> calls received
        self.call_keys: Counter[str] = Counter()  # call_key -> times received
        self.log: list[Call] = []
        self.failures: Counter[str] = Counter()  # model -> failed (non-200 or malformed) answers
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # ----------------------------------------------------------------- control

    def set(self, model: str, **changes: Any) -> Behaviour:
        """Set (or update) the behaviour of ``model``; returns it."""
        current = self.behaviours.get(model, self.default)
        self.behaviours[model] = replace(current, **changes)
        return self.behaviours[model]

    def behaviour(self, model: str) -> Behaviour:
        return self.behaviours.get(model, self.default)

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.call_keys.clear()
            self.failures.clear()
            self.log.clear()

    def duplicates(self) -> dict[str, int]:
        """Calls received more than once (same model, messages and parameters) -> count."""
        return {k: n for k, n in self.call_keys.items() if n > 1}

    @property
    def root_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeOpenAI is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    def start(self) -> FakeOpenAI:
        # imported here: benchmarks/bench_gateway.py loads this file by path and only uses _app()
        from tests.support.serving import serve_in_thread

        self._server, self._thread, self.port = serve_in_thread(
            self._app(),
            "fake-openai",
            timeout=10,
            lifespan="off",
            timeout_graceful_shutdown=1,
            backlog=2048,
            timeout_keep_alive=30,
        )
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- app

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/health", lambda _r: JSONResponse({"status": "ok"}), methods=["GET"]),
            ]
        )

    async def _models(self, _request: Request) -> Response:
        names = sorted(set(self.behaviours) | set(self.calls))
        return JSONResponse(
            {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]}
        )

    async def _receive(
        self, request: Request, field: str = "messages"
    ) -> tuple[dict[str, Any] | None, Response | None]:
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError:
            return None, _error(400, "request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict) or "model" not in body or field not in body:
            return None, _error(400, f"'model' and '{field}' are required", "invalid_request_error")
        return body, None

    async def _completions(self, request: Request) -> Response:
        """Legacy text completions: ``prompt`` in, ``choices[0].text`` out (echo: the last 'User:' line)."""
        body, bad = await self._receive(request, "prompt")
        if bad is not None:
            return bad
        b, stop = await self._gate(request, body)
        if stop is not None:
            return stop
        prompt = str(body["prompt"])
        users = [ln[5:].strip() for ln in prompt.splitlines() if ln.startswith("User:")]
        as_chat = {**body, "messages": [{"role": "user", "content": users[-1] if users else prompt}]}
        text = " " + self._text(b, as_chat)
        usage = {
            "prompt_tokens": count_tokens(prompt),
            "completion_tokens": count_tokens(text),
            "total_tokens": count_tokens(prompt) + count_tokens(text),
        }
        return JSONResponse(
            {
                "id": "cmpl-" + uuid.uuid4().hex[:16],
                "object": "text_completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "text": text, "finish_reason": b.finish_reason, "logprobs": None}],
                "usage": usage,
            }
        )

    async def _wait(self, gate: threading.Event | None) -> None:
        while gate is not None and not gate.is_set() and not self._stop.is_set():
            await asyncio.sleep(0.02)

    async def _gate(self, request: Request, body: dict[str, Any]) -> tuple[Behaviour, Response | None]:
        """Count the call, then apply auth, latency, hangs and failures; a Response means stop here."""
        model = str(body["model"])
        with self._lock:
            self.calls[model] += 1
            self.call_keys[call_key(model, body)] += 1
            n = self.calls[model]
            self.log.append(
                Call(
                    model,
                    request.url.path,
                    body,
                    time.monotonic(),
                    {k: v for k, v in request.headers.items() if k.lower() not in ("authorization", "x-api-key")},
                )
            )
            roll_fail, roll_hang, roll_bad = self.rng.random(), self.rng.random(), self.rng.random()
        if self.strict_models and model not in self.behaviours:
            return self.default, self._fail(model, _error(404, f"model '{model}' not found", "not_found"))
        b = self.behaviour(model)
        if b.api_key is not None:
            sent = request.headers.get("x-api-key") or request.headers.get("authorization", "")
            sent = sent.removeprefix("Bearer ").strip()
            if sent != b.api_key:
                message = (b.fail_message or "invalid api key").replace("{key}", sent)
                return b, self._fail(model, _error(401, message, "authentication_error"))
        if b.hang or roll_hang < b.hang_rate:
            while not self._stop.is_set():
                await asyncio.sleep(0.05)
            return b, Response(status_code=503)
        await self._wait(b.gate)
        if b.latency:
            await asyncio.sleep(b.latency)
        refused = next((p for p in b.reject_params if p in body), None)
        if refused is not None:
            message = b.reject_params[refused]
            code = "unsupported_value" if message.startswith("Unsupported value") else "unsupported_parameter"
            return b, self._fail(model, _error(400, message, "invalid_request_error", param=refused, code=code))
        if n <= b.fail_first or roll_fail < b.fail_rate:
            headers = {"retry-after": f"{b.retry_after:g}"} if b.retry_after is not None else {}
            kind = "rate_limit_error" if b.fail_status == 429 else "server_error"
            return b, self._fail(model, _error(b.fail_status, f"injected failure {b.fail_status}", kind, headers))
        if b.malformed and roll_bad < b.malformed_rate and b.malformed != "sse":
            with self._lock:
                self.failures[model] += 1
            if b.malformed == "json":
                return b, Response(
                    '{"id": "x", "choices": [{"message": {"content": "trunc', media_type="application/json"
                )
            return b, JSONResponse({"id": "x", "object": "chat.completion", "unexpected": True})
        return b, None

    def _fail(self, model: str, response: Response) -> Response:
        with self._lock:
            self.failures[model] += 1
        return response

    @staticmethod
    def _text(b: Behaviour, body: dict[str, Any]) -> str:
        if b.reply is None:
            return "echo: " + _last_user(body)
        if callable(b.reply):
            return b.reply(body)
        return b.reply

    async def _chat(self, request: Request) -> Response:
        body, bad = await self._receive(request)
        if bad is not None:
            return bad
        b, stop = await self._gate(request, body)
        if stop is not None:
            return stop
        calls = b.tool_calls(body) if b.tool_calls is not None else None
        text = "" if calls else self._text(b, body)
        prompt_tokens = count_tokens(_messages_text(body))
        out_tokens = count_tokens(text) + (count_tokens(json.dumps(calls)) if calls else 0)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": out_tokens,
            "total_tokens": prompt_tokens + out_tokens,
        }
        cid = "chatcmpl-" + uuid.uuid4().hex[:16]
        if calls:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": c.get("id") or f"call_{cid[-8:]}_{i}",
                        "type": "function",
                        "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                    }
                    for i, c in enumerate(calls)
                ],
            }
            if body.get("stream"):  # the calls as OpenAI streams them: name first, arguments in pieces
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return StreamingResponse(
                    self._sse_tool_calls(body["model"], cid, message["tool_calls"], usage, include_usage),
                    media_type="text/event-stream",
                )
            return _completion(cid, body["model"], message, "tool_calls", usage)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                self._sse(b, body["model"], cid, text, usage, include_usage), media_type="text/event-stream"
            )
        return _completion(cid, body["model"], {"role": "assistant", "content": text}, b.finish_reason, usage)

    async def _sse(self, b: Behaviour, model: str, cid: str, text: str, usage: dict[str, int], include_usage: bool):
        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            payload = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                **extra,
            }
            return "data: " + json.dumps(payload) + "\n\n"

        def chunk(delta: dict[str, Any], finish: str | None) -> str:
            return event([{"index": 0, "delta": delta, "finish_reason": finish}])

        yield chunk({"role": "assistant", "content": ""}, None)
        words = text.split(" ")
        for i, word in enumerate(words):
            if b.stream_chunk_delay:
                await asyncio.sleep(b.stream_chunk_delay)
            piece = word if i == 0 else " " + word
            if b.malformed == "sse" and i == len(words) // 2:
                yield "data: {broken json\n\n"
                return
            yield chunk({"content": piece}, None)
        await self._wait(b.stream_gate)
        yield chunk({}, b.finish_reason)
        if include_usage:
            yield event([], usage=usage)
        yield "data: [DONE]\n\n"

    async def _sse_tool_calls(
        self, model: str, cid: str, calls: list[dict[str, Any]], usage: dict[str, int], include_usage: bool
    ):
        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            payload = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
            return "data: " + json.dumps({**payload, "choices": choices, **extra}) + "\n\n"

        yield event([{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}])
        for i, call in enumerate(calls):
            head = {"index": i, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"]}}
            yield event([{"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None}])
            args = call["function"]["arguments"]
            for start in range(0, len(args), 7):
                piece = {"index": i, "function": {"arguments": args[start : start + 7]}}
                yield event([{"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
        if include_usage:
            yield event([], usage=usage)
        yield "data: [DONE]\n\n"

    async def _anthropic(self, request: Request) -> Response:
        body, bad = await self._receive(request)
        if bad is not None:
            return bad
        b, stop = await self._gate(request, body)
        if stop is not None:
            return stop
        text = self._text(b, body)
        stop_reason = {"stop": "end_turn", "length": "max_tokens"}.get(b.finish_reason, b.finish_reason)
        return JSONResponse(
            {
                "id": "msg_" + uuid.uuid4().hex[:16],
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": count_tokens(_messages_text(body)), "output_tokens": count_tokens(text)},
            }
        )


def _error(
    status: int,
    message: str,
    kind: str,
    headers: dict[str, str] | None = None,
    param: str | None = None,
    code: str | int | None = None,
) -> Response:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": status if code is None else code}},
        status_code=status,
        headers=headers,
    )
