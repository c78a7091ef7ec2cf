"""A local Ray with 2 CPUs for the engine tests, started once per test module (a start costs seconds; it
is stopped after the module, so the other areas' tests never run beside an idle cluster), and how to
find and SIGKILL the worker process running a given task."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def require_ray():
    """The ``ray`` module; missing it skips locally and is an error under CI (scripts/setup installs it)."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            raise RuntimeError("CI=true but ray is not installed: scripts/setup installs .[test,scale,ray]") from None
        pytest.skip("ray is not installed (pip install -e '.[ray]')")
    return ray


@pytest.fixture(scope="module")
def local_ray() -> Iterator[str]:
    """The address of a local Ray (2 CPUs, no dashboard) shared by the module's tests."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


def task_pids(task: str) -> list[int]:
    """Pids of the Ray workers now running ``task`` (a worker's process title is ``ray::<task>``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(f"ray::{task}".encode()):
            pids.append(int(entry.name))
    return pids


def kill_worker(task: str, timeout: float = 60.0) -> int:
    """SIGKILL one worker running ``task`` (waiting for one to be running); returns its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = task_pids(task)
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            return pids[0]
        time.sleep(0.02)
    raise AssertionError(f"no Ray worker ran {task} within {timeout:g}s")
