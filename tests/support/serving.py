"""Serve an ASGI app with uvicorn in a background thread on a loopback port the OS picks.

The socket is bound here and handed to uvicorn, so there is no window in
which another process can take the port (unlike picking a free port and
binding it again later). TCP_NODELAY is set on the listening socket: accepted
connections inherit it; without it Nagle + delayed ACK add ~40 ms a response.

    server, thread, port = serve_in_thread(app, name="my-app")
    ...
    server.should_exit = True; thread.join()
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


def loopback_socket() -> socket.socket:
    """A TCP socket bound to 127.0.0.1 on a free port (read it with ``getsockname()[1]``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    """A port free right now, for a server in another process (which binds it itself, a little later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_in_thread(
    app: Any, name: str, timeout: float = 15.0, **config: Any
) -> tuple[uvicorn.Server, threading.Thread, int]:
    """Start ``app`` under uvicorn in a daemon thread; returns once it accepts connections.

    ``config`` goes to ``uvicorn.Config`` (defaults: log_level warning, no access log).
    Raises RuntimeError naming ``name`` when the server is not up within ``timeout`` seconds.
    """
    sock = loopback_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, **{"log_level": "warning", "access_log": False, **config}))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"{name}-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"{name} did not start within {timeout:g} s")
        time.sleep(0.005)
    return server, thread, port
