"""The request path: route a chat completion to the serving model, relay its answer, hand off the rest.

The user's answer waits only on the serving upstream. Logging (``LogWriter.submit``)
and mirroring (``Mirror.offer``) are non-blocking hand-offs. A request body that
is not JSON is forwarded untouched to the incumbent, so a malformed request gets
exactly the error the upstream gives. When the candidate serving a user fails
(no answer or a 5xx), the incumbent - kept warm - answers instead, until it is
decommissioned at the end of the rollout's hold. During the
rollout's hold (100 %, incumbent still warm) ``rollout.reverse_mirror`` of the
candidate's answered requests are mirrored to the incumbent.

What a client sends is bounded first (``shadow.limits``): a body over
``gateway.max_request_bytes`` is a 413, JSON nested too deep or a sticky key /
request type longer than the log holds is a 400, all in OpenAI's error shape and
counted in ``changeover_rejected_total``. Exceptions are caught by cause: a
client leaving mid-stream (cancellation) is logged as ``client_disconnected``;
anything else is a bug in the gateway - a 500, logged with its traceback and
counted in ``changeover_gateway_errors_total``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from changeover.providers.deprecation import DeprecationNotice
from changeover.rollout.state import holding
from changeover.shadow import limits
from changeover.shadow.config import Settings
from changeover.shadow.context import ExpectRefusal, RequestTyper, StickyKey
from changeover.shadow.exchange import Exchange
from changeover.shadow.metrics import Metrics
from changeover.shadow.mirror import Mirror, MirrorJob, drawn
from changeover.shadow.prompting import LivePrompts
from changeover.shadow.upstream import Stream, UpstreamClient, UpstreamFailure
from changeover.shadow.wire import UsageStripper, error_body, wants_usage, with_usage
from changeover.shadow.writer import LogWriter
from changeover.store.events import now

log = logging.getLogger("changeover.gateway")


class Rejected(Exception):
    """A request refused before routing: ``status`` (4xx), a message for the client and a short code."""

    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Route:
    request_id: str
    model: str
    subject: str | None
    request_type: str
    stage: int
    weight: int
    prompt_id: str | None = None  # the registry prompt the request is (an upstream's variant applies)
    expect_refusal: bool | None = None  # should it be refused (header or request-type rule; for the judges)
    status: str = "progressing"  # the rollout's status when routed (the hold turns the mirror around)


@dataclass(slots=True)
class Result:
    """One upstream call: either a response (status, body, headers) or a transport failure."""

    status: int | None
    body: bytes | None
    headers: dict[str, str]
    error: str | None
    latency_ms: float
    notice: DeprecationNotice | None = None

    @property
    def failed(self) -> bool:
        """No answer at all, or a server error: worth answering from the incumbent instead."""
        return self.error is not None or (self.status is not None and self.status >= 500)


class Gateway:
    def __init__(
        self,
        settings: Settings,
        upstreams: dict[str, UpstreamClient],
        writer: LogWriter,
        mirror: Mirror,
        features: OpenFeatureClient,
        metrics: Metrics,
        prompts: LivePrompts | None = None,
    ):
        self.incumbent = settings.incumbent
        self.flag = settings.rollout.flag
        self.fallback = settings.rollout.fallback_to_incumbent
        self.reverse_rate = settings.rollout.reverse_mirror
        self.upstreams = upstreams
        self.writer = writer
        self.mirror = mirror
        self.features = features
        self.metrics = metrics
        self.prompts = prompts
        judge = settings.shadow.judge
        self.refusal = ExpectRefusal(judge) if judge is not None else None
        self.typer = RequestTyper(settings.gateway.request_type)
        self.sticky = StickyKey(settings.rollout.stickiness)
        self.max_bytes = settings.gateway.max_request_bytes
        self.max_depth = settings.gateway.max_json_depth

    # ------------------------------------------------------------------ routing

    def route(self, payload: dict[str, Any] | None, headers) -> Route:
        subject = self.sticky(payload, headers)
        request_type = self.typer(payload, headers)
        if limits.too_long(subject, limits.MAX_SUBJECT):
            raise Rejected(400, f"the sticky key (user/session id) is over {limits.MAX_SUBJECT} characters", "subject")
        if limits.too_long(request_type, limits.MAX_REQUEST_TYPE):
            raise Rejected(400, f"the request type is over {limits.MAX_REQUEST_TYPE} characters", "request_type")
        context = EvaluationContext(targeting_key=subject, attributes={"request_type": request_type})
        details = self.features.get_string_details(self.flag, self.incumbent, context)
        model = details.value if details.value in self.upstreams else self.incumbent
        meta = details.flag_metadata or {}
        return Route(
            uuid.uuid4().hex,
            model,
            subject,
            request_type,
            int(meta.get("stage", 0)),
            int(meta.get("weight", 0)),
            self.prompts.prompt_id(payload, headers) if self.prompts is not None else None,
            self.refusal(request_type, headers) if self.refusal is not None else None,
            str(meta.get("status", "progressing")),
        )

    def _prompted(
        self, route: Route, upstream: UpstreamClient, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        """The request with the upstream's prompt variant applied (``shadow.prompting``), and its version."""
        if self.prompts is None:
            return payload, None
        return self.prompts.apply(payload, route.prompt_id, upstream.config.prompt_for)

    def _falls_back(self, route: Route) -> bool:
        """Whether a failed candidate answer is answered by the incumbent instead: not once the hold is
        over and the incumbent decommissioned (rollout ``complete``)."""
        return self.fallback and route.status != "complete"

    # ------------------------------------------------------------------ hand-offs

    def _log(
        self,
        route: Route,
        model: str,
        role: str,
        payload: dict[str, Any] | None,
        stream: bool,
        at,
        result: Result,
        ttft_ms: float | None = None,
        prompt: str | None = None,
    ) -> Exchange:
        outcome = result.error or str(result.status)
        self.metrics.observe(model, role, outcome, result.latency_ms)
        exchange = Exchange(
            request_id=route.request_id,
            at=at,
            model=model,
            role=role,
            request_type=route.request_type,
            subject=route.subject,
            stage=route.stage,
            weight=route.weight,
            stream=stream,
            payload=payload,
            body=result.body,
            status=result.status,
            error=result.error,
            latency_ms=result.latency_ms,
            ttft_ms=ttft_ms,
            prompt=prompt,
            deprecation=result.notice,
        )
        self.writer.submit(exchange)
        return exchange

    def _maybe_mirror(
        self,
        route: Route,
        served_by: str,
        payload: dict[str, Any] | None,
        result: Result,
        authorization: str | None,
        served: Exchange,
    ) -> None:
        if route.model != served_by or payload is None or result.status is None or result.status >= 400:
            return  # not after a fallback (the model routed to did not answer), nor for a failed answer
        if served_by == self.incumbent:
            to = None
            if not self.mirror.sampled(route.request_type):
                return
        elif holding(route.weight, route.status):
            to = self.incumbent  # the hold: the candidate serves, the incumbent is reverse-mirrored
            if not drawn(self.reverse_rate):
                return
        else:
            return
        self.mirror.offer(
            MirrorJob(
                route.request_id,
                payload,
                route.request_type,
                route.subject,
                route.stage,
                route.weight,
                authorization,
                route.prompt_id,
                served,
                route.expect_refusal,
                to,
            )
        )

    # ------------------------------------------------------------------ non-streaming

    async def _call(self, upstream: UpstreamClient, content: bytes, authorization: str | None) -> Result:
        t0 = time.perf_counter()
        try:
            reply = await upstream.post(content, authorization)
        except UpstreamFailure as exc:
            return Result(None, None, {}, exc.kind, (time.perf_counter() - t0) * 1000.0)
        return Result(reply.status, reply.body, reply.headers, None, (time.perf_counter() - t0) * 1000.0, reply.notice)

    def _respond(self, route: Route, served_by: str, result: Result) -> Response:
        headers = {"x-changeover-model": served_by, "x-changeover-request-id": route.request_id}
        if result.error is not None:
            status = 504 if result.error == "timeout" else 502
            return JSONResponse(
                error_body(
                    f"the upstream for {served_by} gave no answer ({result.error})",
                    "upstream_error",
                    result.error,
                ),
                status_code=status,
                headers=headers,
            )
        headers.update(result.headers)
        return Response(result.body, status_code=result.status, headers=headers)

    async def chat_completions(self, request: Request) -> Response:
        """Answer one chat completion; a bug in the gateway is a counted, logged 500 (never a hang)."""
        try:
            return await self._chat(request)
        except Rejected as exc:
            self.metrics.reject(exc.code)
            return JSONResponse(error_body(str(exc), "invalid_request_error", exc.code), status_code=exc.status)
        except Exception as exc:  # a bug: cancellation (BaseException) passes through untouched
            self.metrics.error(exc)
            log.exception("gateway error on %s", request.url.path)
            return JSONResponse(
                error_body("the gateway failed on this request (logged)", "gateway_error", type(exc).__name__),
                status_code=500,
            )

    def _parse(self, raw: bytes) -> dict[str, Any] | None:
        """The request as a JSON object, or None when it is not one (forwarded untouched)."""
        try:
            payload = limits.loads(raw, self.max_depth)
        except limits.TooDeep as exc:
            raise Rejected(400, f"{exc} (gateway.max_json_depth)", "json_too_deep") from None
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    async def _chat(self, request: Request) -> Response:
        try:
            raw = await limits.read_capped(request, self.max_bytes)
        except limits.BodyTooLarge:
            raise Rejected(
                413,
                f"the request body is larger than {self.max_bytes:,} bytes (gateway.max_request_bytes)",
                "body_too_large",
            ) from None
        authorization = request.headers.get("authorization")
        payload = self._parse(raw)
        route = self.route(payload, request.headers)
        if payload is not None and payload.get("stream") is True:
            return await self._stream(route, payload, authorization)
        model = route.model if payload is not None else self.incumbent
        upstream = self.upstreams[model]
        prompt = None
        if payload is None:
            content = raw
        else:
            sent, prompt = self._prompted(route, upstream, payload)
            content = upstream.encode(sent)
        at = now()
        result = await self._call(upstream, content, authorization)
        served = self._log(route, model, "served", payload, False, at, result, prompt=prompt)
        if model != self.incumbent and self._falls_back(route) and result.failed:
            model = self.incumbent
            upstream = self.upstreams[model]
            sent, prompt = self._prompted(route, upstream, payload)
            at = now()
            result = await self._call(upstream, upstream.encode(sent), authorization)
            served = self._log(route, model, "fallback", payload, False, at, result, prompt=prompt)
        self._maybe_mirror(route, model, payload, result, authorization, served)
        return self._respond(route, model, result)

    # ------------------------------------------------------------------ streaming

    @staticmethod
    def _asks_usage(upstream: UpstreamClient, payload: dict[str, Any]) -> bool:
        """The gateway adds ``stream_options.include_usage`` (tokens and cost of the stream), and strips
        the usage chunk from the relay, when the upstream takes it and the client did not ask."""
        return upstream.config.stream_usage and not wants_usage(payload)

    async def _open(
        self, upstream: UpstreamClient, payload: dict[str, Any], authorization: str | None
    ) -> tuple[Stream | None, Result | None]:
        """Open a stream; a non-200 answer or a failure comes back as a finished ``Result``."""
        t0 = time.perf_counter()
        try:
            sent = with_usage(payload) if self._asks_usage(upstream, payload) else payload
            opened = await upstream.open_stream(upstream.encode(sent), authorization)
        except UpstreamFailure as exc:
            return None, Result(None, None, {}, exc.kind, (time.perf_counter() - t0) * 1000.0)
        if isinstance(opened, Stream):
            return opened, None
        return None, Result(opened.status, opened.body, opened.headers, None, (time.perf_counter() - t0) * 1000.0)

    async def _stream(self, route: Route, payload: dict[str, Any], authorization: str | None) -> Response:
        model = route.model
        sent, prompt = self._prompted(route, self.upstreams[model], payload)
        at = now()
        t0 = time.perf_counter()
        resp, finished = await self._open(self.upstreams[model], sent, authorization)
        if finished is not None and model != self.incumbent and self._falls_back(route) and finished.failed:
            self._log(route, model, "served", payload, True, at, finished, prompt=prompt)
            model = self.incumbent
            sent, prompt = self._prompted(route, self.upstreams[model], payload)
            at, t0 = now(), time.perf_counter()
            resp, finished = await self._open(self.upstreams[model], sent, authorization)
            role = "fallback"
        else:
            role = "served"
        if finished is not None:
            self._log(route, model, role, payload, True, at, finished, prompt=prompt)
            return self._respond(route, model, finished)
        headers = {
            "x-changeover-model": model,
            "x-changeover-request-id": route.request_id,
            **resp.headers,
        }
        return StreamingResponse(
            self._relay(route, model, role, payload, authorization, resp, at, t0, prompt),
            status_code=200,
            headers=headers,
        )

    async def _relay(
        self,
        route: Route,
        model: str,
        role: str,
        payload: dict[str, Any],
        authorization: str | None,
        resp: Stream,
        at,
        t0: float,
        prompt: str | None = None,
    ) -> AsyncIterator[bytes]:
        chunks: list[bytes] = []
        ttft = None
        error = None
        strip = UsageStripper() if self._asks_usage(self.upstreams[model], payload) else None
        try:
            async for chunk in resp.chunks():
                if ttft is None:
                    ttft = (time.perf_counter() - t0) * 1000.0
                chunks.append(chunk)  # logged whole, usage included
                out = chunk if strip is None else strip.feed(chunk)
                if out:
                    yield out
            if strip is not None and (rest := strip.flush()):
                yield rest
        except UpstreamFailure as exc:
            error = exc.kind
        except (asyncio.CancelledError, GeneratorExit):  # the client went away; Starlette closes the stream
            error = "client_disconnected"
            self.metrics.disconnects += 1
            raise
        except Exception as exc:  # a bug while relaying: logged and counted, the answer is cut
            error = f"gateway_error:{type(exc).__name__}"
            self.metrics.error(exc)
            log.exception("gateway error while relaying a stream")
            raise
        finally:
            resp.close()
            result = Result(200, b"".join(chunks), {}, error, (time.perf_counter() - t0) * 1000.0, resp.notice)
            served = self._log(route, model, role, payload, True, at, result, ttft, prompt)
            if error is None:
                self._maybe_mirror(route, model, payload, result, authorization, served)
