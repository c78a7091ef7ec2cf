"""The admin API (``/admin/*``): rollout status, advance, pause, resume, rollback - token required.

The token comes from the environment variable named by ``gateway.admin_token_env``
and is compared in constant time; when it is unset every admin call is refused.
Operator actions write the store flag (compare-and-set, one event each), so every
replica sees them within a poll interval.
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

from changeover.errors import ChangeoverError
from changeover.rollout import state as rollout_state
from changeover.rollout.config import RolloutConfig
from changeover.rollout.watch import FlagWatcher
from changeover.shadow.ledger import contamination_subjects
from changeover.store import Store

ACTIONS = {
    "advance": rollout_state.advance,
    "pause": rollout_state.pause,
    "resume": rollout_state.resume,
    "rollback": rollout_state.rollback,
}


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
    ):
        self.store = store
        self.config = config
        self.watcher = watcher
        self.token_env = token_env
        self.status_extra = status_extra

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
        touched = await asyncio.to_thread(contamination_subjects, self.store, state.candidate)
        return JSONResponse({"rollout": state.to_json(), **extra, "contaminated_subjects": len(touched)})

    async def act(self, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        action = request.path_params["action"]
        if action not in ACTIONS:
            return JSONResponse(
                {"error": f"unknown action {action!r}; use one of {', '.join(ACTIONS)}"}, status_code=404
            )
        try:
            body = await request.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        actor = f"admin-api:{str(body.get('actor') or 'operator')[:100]}"

        def run() -> Any:
            current = rollout_state.read_state(self.store, self.config, self.watcher.candidate)
            return ACTIONS[action](self.store, self.config, current, actor, body.get("reason"))

        try:
            new_state = await asyncio.to_thread(run)
        except ChangeoverError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse({"rollout": self.watcher.offer(new_state).to_json()})

    def routes(self) -> list[Route]:
        return [
            Route("/admin/status", self.status, methods=["GET"]),
            Route("/admin/{action}", self.act, methods=["POST"]),
        ]
