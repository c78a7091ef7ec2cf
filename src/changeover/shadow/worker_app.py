"""The app factory each process of ``changeover serve --workers N`` imports (uvicorn's multi-worker mode).

uvicorn binds the port once in the parent and starts N worker processes that
share it; each calls ``app_from_env()``, which reads the spec path, the store URL
and whether to run the controller from the environment the parent set
(``WORKER_ENV``), and builds its own ``GatewayService``: own writer, mirror and
judging worker. The workers coordinate through the store like replicas do: one
stage flag, one active rollout controller (the ``rollout-controller`` lease,
store.lease), one judging budget (shadow.shared_budget).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette

from changeover.config import MigrationSpec
from changeover.errors import StoreError
from changeover.store import Store

WORKER_ENV = {"spec": "CHANGEOVER_SERVE_SPEC", "db": "CHANGEOVER_SERVE_DB", "controller": "CHANGEOVER_SERVE_CONTROLLER"}
FACTORY = "changeover.shadow.worker_app:app_from_env"


def worker_environment(spec_path: Path, db_url: str, controller: bool) -> dict[str, str]:
    """What the parent puts in the environment for its workers."""
    return {
        WORKER_ENV["spec"]: str(spec_path.resolve()),
        WORKER_ENV["db"]: db_url,
        WORKER_ENV["controller"]: "1" if controller else "0",
    }


def app_from_env() -> Starlette:
    """One worker's gateway app, from the parent's ``worker_environment``."""
    from uvicorn.config import STARTUP_FAILURE

    from changeover.config import load_spec
    from changeover.shadow.app import create_app
    from changeover.store import open_store

    try:
        spec = load_spec(Path(os.environ[WORKER_ENV["spec"]]))
        store = open_store(os.environ[WORKER_ENV["db"]])
        app = create_app(spec, store, run_controller=os.environ.get(WORKER_ENV["controller"]) == "1")
    except Exception as exc:  # noqa: BLE001 - the parent stops on this exit code instead of restarting workers
        print(f"error: a gateway worker cannot start: {exc}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
    sys.setswitchinterval(0.0005)  # as `serve` does for one process (cli.gateway)
    return app


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
    """``serve --workers N``: check the store is PostgreSQL and the spec is good, then run uvicorn's
    N workers on ``app_from_env`` (blocks until they stop)."""
    import uvicorn

    from changeover.shadow.config import load_settings

    if store.dialect != "postgresql":
        raise StoreError(
            f"--workers {workers} with the store {store.display_url}: use PostgreSQL for several workers/replicas "
            "(they share the stage flag, the controller lease and the judging budget through it), "
            "e.g. --db postgresql://user@host/db, or serve with --workers 1"
        )
    load_settings(spec)  # a bad spec fails here, once, not in every worker
    url = store.engine.url.render_as_string(hide_password=False)
    os.environ.update(worker_environment(spec_path, url, controller))
    store.dispose()
    announce(f"changeover gateway on http://{host}:{port}/v1 (store {store.display_url}, {workers} workers)")
    uvicorn.run(
        FACTORY,
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        # a worker busy starting on a loaded machine is not hung: uvicorn's 5 s would kill and restart it
        timeout_worker_healthcheck=30,
    )
