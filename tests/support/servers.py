"""Real uvicorn servers on free loopback ports, started in a thread and always stopped."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from litestar import Litestar

from folyam.server import uvicorn_config
from folyam.settings import Settings


def wait_until_serving(url: str, process: subprocess.Popen[Any], timeout: float = 30) -> httpx.Response:
    """`GET url` once the process started there answers it (an AssertionError if it exits or never does)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            assert process.poll() is None, f"the server exited with {process.returncode}"
            assert time.monotonic() < deadline, f"nothing answered at {url} within {timeout:g} s"
            time.sleep(0.1)


def free_port() -> int:
    """A loopback port nobody listens on (for 'connection refused')."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: Any, *, lifespan: str = "on", settings: Settings | None = None) -> Iterator[str]:
    """Serve an ASGI app with real uvicorn on 127.0.0.1:<free port>; yields the base URL.

    A Folyam app (or any app given `settings`) runs with Folyam's own uvicorn config and limits; other
    apps, such as the fake upstream, with uvicorn's defaults."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if settings is None and isinstance(app, Litestar):
        settings = app.state.get("settings")
    if settings is not None:
        config = uvicorn_config(app, settings, lifespan=lifespan, timeout_graceful_shutdown=2)
    else:
        config = uvicorn.Config(
            app, lifespan=lifespan, log_level="warning", access_log=False, timeout_graceful_shutdown=2
        )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
