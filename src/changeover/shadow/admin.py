"""The admin API (``/admin/*``): rollout status, advance, pause, resume, rollback - token required.

The token comes from the environment variable named by ``gateway.admin_token_env``
and is compared in constant time; when it is unset every admin call is refused.
Operator actions write the store flag (compare-and-set, one event each), so every
replica sees them within a poll interval. An action the store cannot take because
it is down is answered 202: this replica routes by it at once and retries it
until it lands (``rollout.pending``). Bodies are capped (413), reasons and actor
names bounded (400), nested JSON refused (400).
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from changeover.errors import ChangeoverError, LimitExceeded, StoreUnavailable
from changeover.rollout import state as rollout_state
from changeover.rollout.config import RolloutConfig
from changeover.rollout.pending import ChangeRetrier
from changeover.rollout.watch import FlagWatcher
from changeover.shadow import limits
from changeover.shadowlog.ledger import contamination_subjects
from changeover.store import Store

ACTIONS = rollout_state.ACTIONS


def _token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-changeover-admin-token")


class AdminAPI:
    def __init__(
        self,
        store: Store,
        config: RolloutConfig,
        watcher: FlagWatcher,
        token_env: str,
        status_extra: Callable[[], dict[str, Any]],
        retrier: ChangeRetrier | None = None,
        max_body: int = 64 << 10,
    ):
        self.store = store
        self.config = config
        self.watcher = watcher
        self.token_env = token_env
        self.status_extra = status_extra
        self.retrier = retrier or ChangeRetrier(store, config)
        self.max_body = max_body

    def _denied(self, request: Request) -> JSONResponse | None:
        expected = os.environ.get(self.token_env)
        given = _token_of(request)
        if not expected:
            return JSONResponse(
                {"error": f"the admin API is disabled: set {self.token_env} on the gateway"}, status_code=403
            )
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            return JSONResponse(
                {"error": "admin token missing or wrong"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
        return None

    async def status(self, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        state = await asyncio.to_thread(self.watcher.refresh)
        extra = self.status_extra()  # in-memory counters, read on the event loop

        def touched_count() -> int:
            with self.store.reachable("reading the contamination ledger"):
                return len(contamination_subjects(self.store, state.candidate))

        try:
            touched: int | None = await asyncio.to_thread(touched_count)
            store = "ok"
        except StoreUnavailable as exc:  # what this replica knows is still worth showing
            touched, store = None, f"unavailable: {exc}"
        return JSONResponse(
            {"rollout": state.to_json(), **extra, "contaminated_subjects": touched, "store_status": store}
        )

    async def _body(self, request: Request) -> dict[str, Any] | JSONResponse:
        try:
            raw = await limits.read_capped(request, self.max_body)
        except limits.BodyTooLarge:
            return JSONResponse({"error": f"the request body is larger than {self.max_body:,} bytes"}, status_code=413)
        if not raw.strip():
            return {}
        try:
            body = limits.loads(raw)
        except limits.TooDeep as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except ValueError:
            return JSONResponse({"error": "the request body is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": 'the request body must be a JSON object: {"reason": "..."}'}, status_code=400)
        return body

    async def act(self, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        action = request.path_params["action"]
        if action not in ACTIONS:
            return JSONResponse(
                {"error": f"unknown action {action!r}; use one of {', '.join(ACTIONS)}"}, status_code=404
            )
        body = await self._body(request)
        if isinstance(body, JSONResponse):
            return body
        name = body.get("actor") or "operator"
        reason = body.get("reason")
        if not isinstance(name, str) or (reason is not None and not isinstance(reason, str)):
            return JSONResponse({"error": "'actor' and 'reason' must be strings"}, status_code=400)

        def run() -> tuple[rollout_state.RolloutState, bool]:
            actor = rollout_state.check_actor(f"admin-api:{name}")
            try:
                current = rollout_state.read_state(self.store, self.config, self.watcher.candidate)
            except StoreUnavailable:  # decide on the last state this replica saw; the retry rebases
                current = self.watcher.state
            return self.retrier.run(action, current, actor, reason)

        try:
            new_state, written = await asyncio.to_thread(run)
        except LimitExceeded as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except StoreUnavailable as exc:
            return JSONResponse({"error": str(exc)}, status_code=503, headers={"retry-after": "1"})
        except ChangeoverError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        if not written:
            pending = self.retrier.pending
            return JSONResponse(
                {
                    "rollout": self.watcher.hold(new_state).to_json(),
                    "pending": None if pending is None else pending.to_json(),
                    "message": f"the store is unavailable: this gateway applies the {action} now and writes it "
                    "when the store is back (other replicas follow then)",
                },
                status_code=202,
            )
        return JSONResponse({"rollout": self.watcher.offer(new_state).to_json()})

    def routes(self) -> list[Route]:
        return [
            Route("/admin/status", self.status, methods=["GET"]),
            Route("/admin/{action}", self.act, methods=["POST"]),
        ]
