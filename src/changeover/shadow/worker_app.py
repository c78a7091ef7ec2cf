"""``changeover serve --workers N``: N gateway processes sharing one port, supervised by uvicorn's ``Multiprocess``.

The parent validates everything it can before it starts a worker: the store must
be PostgreSQL (several processes share the stage flag, the controller lease and
the judging budget through it), and the app is built once with
``create_app(spec, store, run_controller=False)`` (it starts no thread), so a spec
error only the app finds (a ``judges:`` section missing, a prompt registry) is
reported once, by the parent, exit 2. It then binds the port and runs uvicorn's
supervisor, which spawns the workers; each calls a ``WorkerApp`` (pickled to it
over the spawn pipe: the store URL, password included, never goes through the
environment nor a log line) and builds its own ``GatewayService``: own writer,
mirror and judging worker. The workers coordinate through the store like
replicas do: one stage flag, one active rollout controller (the
``rollout-controller`` lease, store.lease), one judging budget
(shadow.shared_budget).

A worker that cannot start (the store away, the spec changed meanwhile) writes
its message to a file the parent names and exits with uvicorn's startup-failure
code; the supervisor then stops every worker instead of restarting them, and the
parent raises the first worker's message as a ``ChangeoverError`` (exit 2).
"""

from __future__ import annotations

import inspect
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from changeover.config import MigrationSpec
from changeover.errors import ChangeoverError, StoreError
from changeover.store import Store

HEALTHCHECK_S = 30  # a worker busy starting on a loaded machine is not hung: uvicorn's 5 s would kill it


class WorkerFailed(ChangeoverError):
    """A ``serve --workers`` worker could not start; the message is the worker's."""


@dataclass(frozen=True)
class WorkerApp:
    """The app factory a worker calls (uvicorn ``factory=True``): spec path, store URL, controller on or off,
    and the file a worker that cannot start writes its message to."""

    spec_path: str
    db_url: str = field(repr=False)  # with its password: never printed
    controller: bool
    failure_path: str

    def __call__(self) -> Starlette:
        from uvicorn.config import STARTUP_FAILURE

        from changeover.config import load_spec
        from changeover.shadow.app import create_app
        from changeover.store import open_store

        try:
            spec = load_spec(Path(self.spec_path))
            store = open_store(self.db_url)
            app = create_app(spec, store, run_controller=self.controller)
        except Exception as exc:  # noqa: BLE001 - the supervisor stops on this exit code instead of restarting
            if not isinstance(exc, ChangeoverError):
                traceback.print_exc()  # a bug: its traceback, on the worker's stderr
            with open(self.failure_path, "a", encoding="utf-8") as out:
                out.write(f"{exc}\n")
            sys.exit(STARTUP_FAILURE)
        sys.setswitchinterval(0.0005)  # as `serve` does for one process (cli.gateway)
        return app


def _supervisor_class() -> type:
    from uvicorn.supervisors.multiprocess import Multiprocess

    class Supervisor(Multiprocess):
        """uvicorn's supervisor, with the parent's copy of each first worker's pipe end closed once it started:
        a worker that dies while a health-check ping waits for its answer is then seen at once (the pipe ends)
        rather than after the whole health-check timeout."""

        def init_processes(self) -> None:
            super().init_processes()
            for process in self.processes:
                process.child_conn.close()

    return Supervisor


def needs_postgres(display_url: str, workers: int) -> StoreError:
    """The refusal of ``--workers N`` on a store that is not PostgreSQL."""
    return StoreError(
        f"--workers {workers} with the store {display_url}: use PostgreSQL for several workers/replicas "
        "(they share the stage flag, the controller lease and the judging budget through it), "
        "e.g. --db postgresql://user@host/db, or serve with --workers 1"
    )


def supervise(
    app: WorkerApp, host: str, port: int, log_level: str, workers: int, announce: Callable[[], None] = lambda: None
) -> None:
    """Bind the port, run ``workers`` processes on ``app`` under uvicorn's supervisor until it stops
    (SIGTERM/SIGINT, or a worker that could not start: ``WorkerFailed`` with its message)."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors.multiprocess import SIGNALS, Multiprocess

    config = uvicorn.Config(
        app,
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        timeout_worker_healthcheck=HEALTHCHECK_S,
    )
    _Supervisor = _supervisor_class()
    handlers: dict[int, Any] = {sig: signal.getsignal(sig) for sig in SIGNALS}  # the supervisor replaces them
    sock = config.bind_socket()
    try:
        supervisor = (
            _Supervisor(config, target=uvicorn.Server(config).run, sockets=[sock])  # uvicorn before 0.51
            if "target" in inspect.signature(Multiprocess).parameters
            else _Supervisor(config, sockets=[sock])
        )
        announce()
        supervisor.run()
    finally:
        sock.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    failed = [p.pid for p in supervisor.processes if p.exitcode == STARTUP_FAILURE]
    messages = Path(app.failure_path).read_text(encoding="utf-8").splitlines() if failed else []
    if failed:
        raise WorkerFailed(
            f"a gateway worker (pid {failed[0]}) could not start: "
            f"{messages[0] if messages else 'see its output above'}; nothing was served"
        )


def serve_workers(
    spec_path: Path,
    spec: MigrationSpec,
    store: Store,
    controller: bool,
    host: str,
    port: int,
    log_level: str,
    workers: int,
    announce: Callable[..., None] = print,
) -> None:
    """``serve --workers N``: check the store is PostgreSQL and the spec is good (the app built once, here),
    then supervise N workers (blocks until they stop)."""
    from changeover.shadow.app import create_app

    if store.dialect != "postgresql":
        raise needs_postgres(store.display_url, workers)
    create_app(spec, store, run_controller=False)  # a bad spec fails here, once, not in every worker
    url = store.engine.url.render_as_string(hide_password=False)
    store.dispose()
    with tempfile.TemporaryDirectory(prefix="changeover-serve-") as tmp:
        app = WorkerApp(str(spec_path.resolve()), url, controller, str(Path(tmp) / "worker-failures.txt"))
        supervise(
            app,
            host,
            port,
            log_level,
            workers,
            lambda: announce(
                f"changeover gateway on http://{host}:{port}/v1 (store {store.display_url}, {workers} workers)"
            ),
        )
