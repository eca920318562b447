"""How Folyam runs under uvicorn: its HTTP protocol with the limits uvicorn lacks, its uvicorn config, and
the server that drains running answers on SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar, Final

import httptools
import uvicorn
from litestar import Litestar
from litestar.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from folyam.settings import Settings

if TYPE_CHECKING:
    from folyam.generations import Generations

__all__ = ["DrainingServer", "FolyamHttpProtocol", "protocol_class", "run_workers", "serve_app", "uvicorn_config"]

_DEFAULTS = Settings()
logger = logging.getLogger(__name__)


class _HeadTooLarge(Exception):
    """Raised inside a parser callback: llhttp stops at once, so nothing after it in the buffer is parsed."""


class FolyamHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus three limits it lacks: the size of a request's head (431), the
    time a client gets to send it (408), and the time our writes may sit unread (then the connection is
    aborted, which also wakes the app's pending send)."""

    max_header_bytes: ClassVar[int] = _DEFAULTS.max_header_bytes
    header_timeout: ClassVar[float] = _DEFAULTS.header_timeout
    send_timeout: ClassVar[float] = _DEFAULTS.send_timeout

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._awaiting_head = True  # the next bytes belong to a request's head
        self._head_begun = False  # and some of them have come
        self._heads = 0  # heads begun on this connection
        self._head_size = 0  # the head's URL and complete header lines, as the parser hands them over
        self._head_received = 0  # bytes of the reads after the one it began in, while it stays incomplete
        self._refused = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Pause (and start the send clock) as soon as anything stays unsent, not past asyncio's 64 KiB:
        # else the last bytes of a response to a peer that reads nothing would keep it open forever.
        # A reading peer takes every write at once, so this changes nothing for it.
        transport.set_write_buffer_limits(high=0)
        # A connection that never sends a byte is closed too (uvicorn only times out idle keep-alives).
        self._start_header_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        self._stop_send_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # our answer is written and the connection is closing
        if self._awaiting_head and self._header_timer is None:
            # On a keep-alive connection the clock starts with the next request's first byte (uvicorn
            # has just stopped its idle timer, whatever the bytes are).
            self._start_header_clock()
        heads = self._heads
        # As uvicorn's, plus the head-size limit.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(431, "Request header fields too large")
            else:
                self._invalid_request()
            return
        except httptools.HttpParserError:
            self._invalid_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._head_begun and self._heads == heads:
            # All of this read belongs to a head begun earlier and still incomplete. httptools grows a header
            # it has not finished by bytes concatenation: stop it a read or two past the limit.
            self._head_received += len(data)
            if self._head_received > self.max_header_bytes:
                self._refuse(431, "Request header fields too large")

    def _invalid_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True
        self._heads += 1
        self._head_size = self._head_received = 0

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head = self._head_begun = False
        self._stop_header_clock()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_head = True
        super().on_message_complete()

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.max_header_bytes:
            raise _HeadTooLarge

    # Limits

    def _start_header_clock(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._head_begun:
            self._refuse(408, "Request timeout")
        elif (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()  # nothing came, or nothing but the blank lines HTTP lets a client send

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` without starting the app, and close the connection."""
        self._refused = True
        self._stop_header_clock()
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's response is still being written, and ours would land in its middle:
            # read no more and close once it is done.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        body = message.encode("ascii")
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()

    def pause_writing(self) -> None:
        # The peer is not reading and the buffers are full. uvicorn's send would wait for it forever.
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.send_timeout, self._send_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._stop_send_clock()

    def _send_timed_out(self) -> None:
        self._send_timer = None
        # abort, not close: close would wait for the unread buffer to drain. uvicorn's connection_lost then
        # marks the response disconnected and wakes the app's pending send.
        self.transport.abort()

    def _stop_header_clock(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _stop_send_clock(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None


def protocol_class(settings: Settings) -> type[FolyamHttpProtocol]:
    """FolyamHttpProtocol with the limits in `settings` (uvicorn builds protocols with arguments of its own)."""

    class BoundProtocol(FolyamHttpProtocol):
        max_header_bytes = settings.max_header_bytes
        header_timeout = settings.header_timeout
        send_timeout = settings.send_timeout

    return BoundProtocol


def uvicorn_config(app: ASGIApp, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The one uvicorn config Folyam runs with; keyword overrides win."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": protocol_class(settings),
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default, and the rate limiter keys on the
        # client address: believe proxy headers only from the proxies named in the settings.
        "proxy_headers": settings.forwarded_allow_ips is not None,
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 5,
        "server_header": False,
    }
    if settings.forwarded_allow_ips is not None:
        options["forwarded_allow_ips"] = settings.forwarded_allow_ips
    return uvicorn.Config(app, **{**options, **overrides})


# Generation 0 after this many allocations (Python's default: 700), then 1 every 20 of those, 2 every 50 of
# 1. Answers in flight allocate fast and make almost no cycles: at 400 answers the default thresholds ran
# ~200 collections in a 7 s run, which found nothing and took ~7 % of the CPU, with a full one that
# stopped every answer for 50-70 ms (bench/RESULTS.md, issue 11, seventh round).
COLLECTOR_THRESHOLDS: Final = (20_000, 20, 50)


def settle_collector() -> None:
    """Once the app has started. What exists then (modules, templates, the app's objects) lives as long as
    the process: out of the cyclic collector's sight, which otherwise walked all of it again on every full
    collection (about 8 % of a busy process's CPU). And collections far apart (`COLLECTOR_THRESHOLDS`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


class DrainingServer(uvicorn.Server):
    """On the first SIGTERM/SIGINT, stop starting answers, let running ones finish within the grace
    period (then end them with a notice), and only then close the connections. A second signal quits."""

    def __init__(self, config: uvicorn.Config, app: Litestar, grace: float) -> None:
        super().__init__(config)
        self._app = app
        self._grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)  # the app's lifespan has started
        settle_collector()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining is not None and sig == signal.SIGTERM:
            return  # (the parent passes a terminal's Ctrl-C on as SIGTERM: it must not cut the drain short)
        if self._loop is None or self._draining is not None or sig not in (signal.SIGTERM, signal.SIGINT):
            super().handle_exit(sig, frame)
            return
        # A signal handler runs between bytecodes: hand the work to the event loop.
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        generations: Generations = self._app.state.generations
        await generations.drain(self._grace)
        await asyncio.sleep(0.2)  # let the streams deliver their final events
        self.should_exit = True


def serve_app(factory: Callable[[Settings], Litestar], settings: Settings, sockets: list[socket.socket] | None) -> None:
    """One process: the app on uvicorn with Folyam's protocol, draining on SIGTERM."""
    app = factory(settings)
    DrainingServer(uvicorn_config(app, settings), app, settings.shutdown_grace).run(sockets=sockets)


def run_workers(factory: Callable[[Settings], Litestar], settings: Settings) -> None:
    """`settings.workers` processes serving one port (the socket is bound here and shared), restarted if
    one dies. SIGTERM and SIGINT are passed on as SIGTERM (each drains its answers): a SIGINT may have
    been sent to this process alone (`kill -INT`), not by a terminal to the whole group."""
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.set_inheritable(True)
    spawn = multiprocessing.get_context("spawn")

    def start() -> BaseProcess:
        process = spawn.Process(target=serve_app, args=(factory, settings, [sock]), daemon=False)
        process.start()
        return process

    workers = [start() for _ in range(settings.workers)]
    stopping = threading.Event()

    def on_signal(sig: int, _: FrameType | None) -> None:
        stopping.set()
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping.wait(0.5):
        for index, worker in enumerate(workers):
            if not worker.is_alive() and not stopping.is_set():
                logger.warning("worker %s exited with %s; starting another", worker.pid, worker.exitcode)
                workers[index] = start()
    for worker in workers:
        worker.join(timeout=settings.shutdown_grace + 10)
    sock.close()
