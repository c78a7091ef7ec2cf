"""The gateway as an ASGI app: wires upstreams, writer, mirror, flag watcher, controller and routes.

``create_app(spec, store)`` returns a Starlette app; its lifespan starts the
background parts and, on shutdown (uvicorn's SIGTERM handling waits for the
requests in flight first), stops mirroring, then drains the log writer, so every
answer acknowledged to a user is in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from openfeature import api as openfeature_api
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from changeover.config import MigrationSpec
from changeover.errors import StoreUnavailable
from changeover.rollout import state as rollout_state
from changeover.rollout.controller import Controller
from changeover.rollout.pending import ChangeRetrier
from changeover.rollout.provider import ChangeoverProvider
from changeover.rollout.regression import equivalence_for, regression_for
from changeover.rollout.state import RolloutState
from changeover.rollout.watch import FlagWatcher
from changeover.shadow.admin import AdminAPI
from changeover.shadow.admission import Admission, Load
from changeover.shadow.config import Settings, load_settings
from changeover.shadow.gateway import Gateway
from changeover.shadow.judging import JudgeWorker
from changeover.shadow.keepalive import KeepAlive
from changeover.shadow.metrics import Metrics, deprecation_gauges, judge_gauges, keep_alive_gauges
from changeover.shadow.mirror import Mirror
from changeover.shadow.prompting import LivePrompts
from changeover.shadow.redact import Redactor
from changeover.shadow.rows import RowMaker
from changeover.shadow.upstream import UpstreamClient
from changeover.shadow.writer import LogWriter
from changeover.shadowlog.tables import ensure_tables
from changeover.store import Store
from changeover.store.lease import NamedLease

log = logging.getLogger("changeover.gateway")

ROLLOUT_ACTIONS = ("advance", "pause", "resume", "rollback")
CONTROLLER_LEASE = "rollout-controller"  # only its holder runs the controller's analysis


class GatewayService:
    """Everything one gateway process runs; ``lifespan`` starts and stops it in order."""

    def __init__(self, spec: MigrationSpec, store: Store, *, run_controller: bool = True):
        self.spec = spec
        self.store = store
        self.settings: Settings = load_settings(spec)
        self.run_controller = run_controller
        ensure_tables(store)
        s = self.settings
        rollout_state.ensure_started(store, s.rollout, s.candidate, "gateway")
        self.metrics = Metrics()
        self.load = Load(s.gateway.max_in_flight, s.gateway.retry_after)  # admission control (shadow.admission)
        self.prompts = LivePrompts.for_spec(spec, s.gateway)  # a bad registry fails here, before serving
        rows = RowMaker(s.gateway.upstreams, set(spec.candidates), Redactor(s.shadow.redact), s.shadow.log_requests)
        self.judge = JudgeWorker.for_spec(spec, store, s.shadow.judge, rows) if s.shadow.judge else None
        self.keep_alive = KeepAlive(spec, store, s) if s.shadow.keep_alive else None
        self.writer = LogWriter(
            store,
            rows,
            s.shadow.log_queue_size,
            s.shadow.batch_size,
            s.shadow.flush_interval,
        )
        self.watcher = FlagWatcher(store, s.rollout, s.candidate, s.gateway.flag_poll)
        self.retrier = ChangeRetrier(store, s.rollout)  # rollout changes the store could not take yet
        self.controller = Controller(
            store,
            s.rollout,
            s.incumbent,
            s.candidate,
            regression=regression_for(spec, store, s.incumbent, s.candidate, judged=s.shadow.judge is not None),
            retrier=self.retrier,
            equivalence=equivalence_for(spec, store, s.incumbent, s.candidate) if s.shadow.judge else None,
        )
        self.controller_errors = 0
        self._lease_taken = 0  # the lease's ``taken`` when the controller last ran
        self.lease = NamedLease(store, CONTROLLER_LEASE, s.gateway.controller_lease_ttl)  # owner = this process
        self.admin = AdminAPI(
            store,
            s.rollout,
            self.watcher,
            s.gateway.admin_token_env,
            self.status_extra,
            self.retrier,
            s.gateway.max_admin_body_bytes,
        )
        self.gateway: Gateway | None = None
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ lifecycle

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        s = self.settings
        upstreams = {m: UpstreamClient(m, s.gateway.upstreams[m]) for m in self.spec.models}
        mirror = Mirror(
            upstreams,
            s.mirror_to,
            self.keep_alive.rate if self.keep_alive is not None else s.shadow.rate,
            self.writer.submit,
            s.shadow.queue_size,
            s.shadow.concurrency,
            s.shadow.timeout,
            self.prompts,
            self.judge.offer if self.judge is not None else None,
        )
        domain = f"changeover-{uuid.uuid4().hex[:8]}"
        openfeature_api.set_provider(ChangeoverProvider(self.watcher, s.incumbent), domain)
        self.gateway = Gateway(
            s, upstreams, self.writer, mirror, openfeature_api.get_client(domain), self.metrics, self.prompts
        )
        self.writer.start()
        self.watcher.start()
        mirror.start()
        if self.judge is not None:
            self.judge.start()
        self._tasks.append(asyncio.create_task(self._land_pending(), name="changeover-pending-change"))
        if self.run_controller:
            self._tasks.append(asyncio.create_task(self._control(), name="changeover-controller"))
            self._tasks.append(asyncio.create_task(self._hold_lease(), name="changeover-controller-lease"))
        if self.keep_alive is not None:
            self._tasks.append(asyncio.create_task(self._keep_alive(self.keep_alive), name="changeover-keep-alive"))
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.to_thread(self.lease.release)  # another replica takes over while this one drains
            await mirror.stop()
            if self.judge is not None:
                await asyncio.to_thread(self.judge.close)
            for upstream in upstreams.values():
                await upstream.aclose()
            await asyncio.to_thread(self.writer.close)
            self.watcher.stop()
            log.info("gateway stopped: %d answers written, %d dropped", self.writer.written, self.writer.dropped)

    async def _control(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rollout.interval)
            try:
                if not await asyncio.to_thread(self._lease_turn):  # another replica's controller is active
                    continue
                decision = await asyncio.to_thread(self.controller.tick)
            except StoreUnavailable as exc:  # counted; the next run tries again
                self.controller_errors += 1
                log.warning("rollout analysis skipped: %s", exc)
                continue
            except Exception:  # noqa: BLE001 - a bug in the analysis must not take the gateway down
                self.controller_errors += 1
                log.exception("rollout analysis failed")
                continue
            self._follow(decision.state, decision.pending)

    def _lease_turn(self) -> bool:
        """Hold the controller lease for one analysis run; newly taken, the trigger counts start afresh
        (those kept from an earlier hold are stale: another holder ran the analysis meanwhile)."""
        if not self.lease.hold():
            return False
        if self.lease.taken != self._lease_taken:
            self._lease_taken = self.lease.taken
            self.controller.forget_counts()
        return True

    async def _hold_lease(self) -> None:
        """Renew (or take over) the controller lease every third of its TTL, between analysis runs too."""
        while True:
            try:
                await asyncio.to_thread(self.lease.hold)
            except Exception:  # noqa: BLE001 - not held until the next try; logged
                log.exception("cannot renew the rollout-controller lease")
            await asyncio.sleep(self.lease.ttl / 3)

    async def _keep_alive(self, keep_alive: KeepAlive) -> None:
        """Assess the judged pairs per request type every ``shadow.keep_alive.interval`` (``shadow.keepalive``)."""
        try:
            await asyncio.to_thread(keep_alive.load)
        except Exception:  # noqa: BLE001 - the store away at start-up: the configured rates until the next check
            log.exception("cannot read the keep-alive events")
        while True:
            await asyncio.sleep(keep_alive.config.interval)
            try:
                await asyncio.to_thread(keep_alive.check)
            except Exception:  # noqa: BLE001 - the store away or a bug: rates stay, counted, the next run retries
                keep_alive.errors += 1
                log.exception("keep-alive assessment failed")

    def _follow(self, state: RolloutState | None, pending: bool) -> None:
        """Route by a new state: written ones by version, a pending one at once (held)."""
        if state is None:
            return
        if pending:
            self.watcher.hold(state)
        else:
            self.watcher.offer(state)

    async def _land_pending(self) -> None:
        """Retry a rollout change the store could not take, with the retrier's backoff."""
        while True:
            due = self.retrier.due()
            await asyncio.sleep(0.1 if due is None else min(max(due, 0.01), 1.0))
            if self.retrier.due() != 0:
                continue
            try:
                landed = await asyncio.to_thread(self.retrier.retry)
            except Exception:  # noqa: BLE001 - keep retrying; the bug is logged
                log.exception("retrying the pending rollout change failed")
                continue
            self._follow(landed, False)

    # ------------------------------------------------------------------ routes

    async def chat_completions(self, request: Request):
        return await self.gateway.chat_completions(request)

    async def models(self, _request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "owned_by": "changeover"} for m in self.spec.models],
            }
        )

    async def health(self, _request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    def status_extra(self) -> dict[str, Any]:
        last = self.controller.last
        mirror = self.gateway.mirror if self.gateway else None
        return {
            "incumbent": self.settings.incumbent,
            "mirror": {
                "sent": dict(mirror.sent),
                "dropped": dict(mirror.dropped),
                "queued": mirror.queue.qsize(),
            }
            if mirror
            else {},
            "log": {
                "written": self.writer.written,
                "dropped": self.writer.dropped,
                "lost": self.writer.lost,
                "store_errors": self.writer.store_errors,
                "queued": self.writer.queue.qsize(),
            },
            "judge": None if self.judge is None else self.judge.to_json(),
            "controller": {"lease": CONTROLLER_LEASE, "held": self.lease.held, "replica": self.lease.owner},
            "pending_change": None if self.retrier.pending is None else self.retrier.pending.to_json(),
            "store": {
                "failed_change_attempts": self.retrier.failed_attempts,
                "changes_landed_after_failure": self.retrier.landed_after_failure,
                "flag_poll_errors": self.watcher.poll_errors,
                "controller_errors": self.controller_errors,
            },
            "last_analysis": None
            if last is None
            else {
                "action": last.action,
                "reason": last.reason,
                "measurements": [m.to_json() for m in last.measurements],
            },
        }

    async def prometheus(self, _request: Request) -> PlainTextResponse:
        state = self.watcher.state
        pending = self.retrier.pending
        mirror = self.gateway.mirror
        gauges: dict[str, tuple[str, dict]] = {
            "changeover_mirror_sent_total": (
                "Mirrored calls made, per candidate.",
                {(("candidate", c),): n for c, n in mirror.sent.items()},
            ),
            "changeover_mirror_dropped_total": (
                "Mirrors dropped because the queue was full, per candidate.",
                {(("candidate", c),): mirror.dropped.get(c, 0) for c in self.settings.mirror_to},
            ),
            "changeover_mirror_queue_depth": ("Mirrors waiting.", {(): mirror.queue.qsize()}),
            "changeover_log_written_total": ("Answers written to the store.", {(): self.writer.written}),
            "changeover_log_dropped_total": (
                "Answers not logged because the write queue was full.",
                {(): self.writer.dropped},
            ),
            "changeover_log_lost_total": ("Answers the store refused after retries.", {(): self.writer.lost}),
            "changeover_log_store_errors_total": (
                "Log batch writes that found the store unavailable (held and retried).",
                {(): self.writer.store_errors},
            ),
            "changeover_log_queue_depth": ("Answers waiting to be written.", {(): self.writer.queue.qsize()}),
            "changeover_rollout_stage": ("Current rollout stage index.", {(): state.stage}),
            "changeover_rollout_weight": (
                "Percent of users served by the candidate.",
                {(("candidate", state.candidate),): state.weight},
            ),
            "changeover_rollout_status": (
                "1 for the rollout's current status.",
                {(("status", state.status),): 1},
            ),
            "changeover_flag_poll_errors_total": (
                "Failed reads of the stage flag.",
                {(): self.watcher.poll_errors},
            ),
            "changeover_controller_errors_total": (
                "Rollout analysis runs that failed (store unavailable or an error).",
                {(): self.controller_errors},
            ),
            "changeover_controller_lease_held": (
                "1 when this replica holds the rollout-controller lease (runs the analysis), per replica.",
                {(("replica", self.lease.owner),): int(self.lease.held)},
            ),
            "changeover_rollout_change_pending": (
                "1 while a rollout change waits for the store, per action.",
                {(("action", a),): int(pending is not None and pending.action == a) for a in ROLLOUT_ACTIONS},
            ),
            "changeover_rollout_change_failures_total": (
                "Rollout change writes the store refused (unavailable); retried until they land.",
                {(): self.retrier.failed_attempts},
            ),
            "changeover_rollout_changes_landed_after_failure_total": (
                "Rollout changes that landed after the store came back.",
                {(): self.retrier.landed_after_failure},
            ),
        }
        last = self.controller.last
        if last is not None and self.lease.held:  # a replica that lost the lease has only stale readings
            gauges["changeover_trigger_value"] = (
                "Last measured value of each rollback trigger.",
                {
                    (("trigger", m.trigger), ("phase", m.phase)): m.value
                    for m in last.measurements
                    if m.value is not None
                },
            )
        if self.judge is not None:
            gauges.update(judge_gauges(self.judge))
        if self.keep_alive is not None:
            gauges.update(keep_alive_gauges(self.keep_alive, mirror))
        gauges.update(deprecation_gauges(self.gateway.upstreams))
        gauges.update(self.load.gauges())
        return PlainTextResponse(self.metrics.render(gauges), media_type="text/plain; version=0.0.4")

    def app(self) -> Starlette:
        routes = [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/healthz", self.health, methods=["GET"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
            *self.admin.routes(),
        ]
        admission = Middleware(Admission, load=self.load, metrics=self.metrics)
        app = Starlette(routes=routes, lifespan=self.lifespan, middleware=[admission])
        app.state.service = self
        return app


def create_app(spec: MigrationSpec, store: Store, *, run_controller: bool = True) -> Starlette:
    return GatewayService(spec, store, run_controller=run_controller).app()
