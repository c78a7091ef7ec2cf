"""Helpers for the gateway tests: write a spec, run a gateway in-process or as a real subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from tests.support.serving import serve_in_thread

from changeover.config import load_spec
from changeover.shadow.app import GatewayService
from changeover.store import Store


def write_spec(path: Path, base_url: str, **sections: Any) -> Path:
    spec: dict[str, Any] = {
        "incumbent": "old",
        "candidates": ["new"],
        "dimensions": {"equivalence": {"signal": "equivalent", "margin": 0.05}},
        "gateway": {
            "upstreams": {
                "old": {"base_url": base_url, "input_per_mtok": 5.0, "output_per_mtok": 15.0},
                "new": {"base_url": base_url, "input_per_mtok": 0.5, "output_per_mtok": 1.5, "timeout": 5},
            }
        },
        "shadow": {"sample": 1.0, "timeout": 2, "flush_interval": 0.05},
        "rollout": {
            "stages": [
                {"weight": 0, "min_duration": "1h"},
                {"weight": 50, "min_duration": "1h"},
                {"weight": 100},
            ],
            "interval": 3600,
        },
    }
    for key, value in sections.items():
        if value is None:
            spec.pop(key, None)
        elif isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chat(text: str = "What is the capital of France?", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt", "messages": [{"role": "user", "content": text}], **extra}


class GatewayServer:
    """The gateway app served by uvicorn in a background thread of the test process."""

    def __init__(self, spec_path: Path, store: Store, run_controller: bool = True):
        self.service = GatewayService(load_spec(spec_path), store, run_controller=run_controller)
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayServer:
        self._server, self._thread, self.port = serve_in_thread(
            self.service.app(), name="gateway", lifespan="on", timeout_graceful_shutdown=10
        )
        return self

    def stop(self) -> None:
        """Graceful stop: in-flight requests finish, the lifespan drains the writer."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._server = None
        self._thread = None


class GatewayProcess:
    """``changeover serve`` as a real subprocess; always killed at the end."""

    def __init__(
        self,
        spec_path: Path,
        db: str,
        env: dict[str, str] | None = None,
        controller: bool = False,
        extra: tuple[str, ...] = (),
    ):
        self.port = free_port()
        args = [
            str(Path(sys.executable).parent / "changeover"),
            "serve",
            "--spec",
            str(spec_path),
            "--db",
            db,
            "--port",
            str(self.port),
            "--no-controller" if not controller else "--controller",
            *extra,
        ]
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(args, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> GatewayProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.proc.stdout.read().decode(errors='replace')}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gateway did not become ready")

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
