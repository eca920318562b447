"""The server's own limits, over real uvicorn and raw sockets: oversized heads (431), slow heads (408),
clients that never read (disconnected), and proxy headers (believed only from a trusted proxy). Each
attack runs while a normal client is still answered."""

from __future__ import annotations

import asyncio
import http.client
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx
import pytest

from folyam.settings import Settings
from tests.conftest import HTMX_HEADERS, composer_form
from tests.support.servers import serve

StartServer = Callable[..., AbstractContextManager[str]]


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_response(sock: socket.socket) -> http.client.HTTPResponse:
    """One response on a connection that stays open."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    return response


def read_until_closed(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (a reset after its answer counts)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server left the connection open; it sent {received[:200]!r}")
    return received


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def assert_answered(url: str) -> None:
    assert httpx.get(url + "/", timeout=5).status_code == 200


@contextmanager
def server_log() -> Iterator[list[logging.LogRecord]]:
    """Warnings and errors uvicorn and asyncio log inside the block (uvicorn reconfigures its loggers when a
    server is configured, so enter this once the server runs)."""
    handler = _Records(logging.WARNING)
    loggers = [logging.getLogger("uvicorn.error"), logging.getLogger("asyncio")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


class _Records(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


HEAD = b"GET / HTTP/1.1\r\nHost: folyam.test\r\n"


def tiny_app(stream_ended: threading.Event) -> Any:
    """A plain ASGI app: `/stream` writes as fast as it may until the client is gone, then sets
    `stream_ended`; `/slow` writes three chunks a tenth of a second apart; any other path answers "ok"."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for n in range(3):
                await asyncio.sleep(0.1)
                await send({"type": "http.response.body", "body": b"chunk %d;" % n, "more_body": n < 2})
            return
        if scope["path"] != "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        while not gone.is_set():
            await send({"type": "http.response.body", "body": b"x" * 65_536, "more_body": True})
            await asyncio.sleep(0)  # once disconnected, uvicorn's send returns at once
        await watcher
        stream_ended.set()

    return app


# Header size


def test_an_8_MB_header_sent_in_pieces_gets_431_long_before_the_server_has_it_all(
    start_one_process: StartServer,
) -> None:
    with start_one_process() as url, server_log() as log, connect(url) as sock:
        sock.sendall(HEAD + b"X-Big: ")
        sent = 0
        while sent < 8_000_000 and not select.select([sock], [], [], 0.01)[0]:  # until the server answers
            try:
                sock.sendall(b"a" * 16_384)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 16_384
        answer = read_until_closed(sock)
        assert status_of(answer) == 431
        assert b"\r\nconnection: close\r\n" in answer
        assert sent < 1_000_000
        assert_answered(url)
    assert log == []


def test_a_120_kB_cookie_gets_431_and_a_20_kB_one_is_served(start_one_process: StartServer) -> None:
    with start_one_process() as url, server_log() as log:
        with connect(url) as sock:
            sock.sendall(HEAD + b"Cookie: a=" + b"b" * 120_000 + b"\r\n\r\n")
            assert status_of(read_until_closed(sock)) == 431
        assert httpx.get(url + "/", headers={"Cookie": "a=" + "b" * 20_000}, timeout=5).status_code == 200
    assert log == []


@pytest.mark.parametrize(
    "after",
    [
        b"Content-Length: 100000\r\n\r\n" + b"x" * 100_000,
        b"Content-Length: 10\r\n\r\n0123456789" + HEAD + b"\r\n",
    ],
    ids=["a body", "a pipelined request"],
)
def test_a_head_over_the_limit_in_one_packet_with_more_behind_it_gets_one_431(
    start_one_process: StartServer, after: bytes
) -> None:
    with start_one_process() as url, server_log() as log, connect(url) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: folyam.test\r\nX-Big: " + b"a" * 40_000 + b"\r\n" + after)
        answer = read_until_closed(sock)
        assert status_of(answer) == 431
        assert answer.count(b"HTTP/1.1 ") == 1
        assert_answered(url)
    assert log == []


def test_a_head_over_the_limit_behind_a_running_response_ends_the_connection_after_it() -> None:
    with serve(tiny_app(threading.Event()), lifespan="off", settings=Settings()) as url, connect(url) as sock:
        sock.sendall(
            b"GET /slow HTTP/1.1\r\nHost: folyam.test\r\n\r\n" + HEAD + b"X-Big: " + b"a" * 40_000 + b"\r\n\r\n"
        )
        answer = read_until_closed(sock)
        # The running response is neither cut nor interleaved with a 431.
        assert status_of(answer) == 200
        assert answer.count(b"HTTP/1.1 ") == 1
        assert answer.endswith(b"chunk 2;\r\n0\r\n\r\n")


def test_bodies_and_heads_under_the_limit_are_served_however_they_share_packets(start_one_process: StartServer) -> None:
    with start_one_process() as url, connect(url) as sock:
        # A large body in the packet of its head, then the next request's head half in that packet.
        upload = b"POST / HTTP/1.1\r\nHost: folyam.test\r\nContent-Length: 300000\r\n"
        sock.sendall(upload + b"Cookie: a=" + b"b" * 20_000 + b"\r\n\r\n" + b"x" * 300_000 + HEAD + b"Cookie: a=b")
        time.sleep(0.1)
        sock.sendall(b"b" * 20_000 + b"\r\n\r\n")
        assert read_response(sock).status == 405  # no such form here, but a request all the same
        assert read_response(sock).status == 200


# Header timeout


def test_a_head_that_stops_halfway_gets_408_and_is_closed(start_one_process: StartServer) -> None:
    with start_one_process(header_timeout=0.5) as url, connect(url) as sock:
        sock.sendall(HEAD)
        assert_answered(url)
        answer = read_until_closed(sock)
        assert status_of(answer) == 408
        assert b"\r\nconnection: close\r\n" in answer


def test_a_connection_that_sends_nothing_is_closed(start_one_process: StartServer) -> None:
    with start_one_process(header_timeout=0.5) as url, connect(url) as sock:
        assert_answered(url)
        assert read_until_closed(sock) == b""


def test_a_keep_alive_connection_that_stalls_in_its_next_head_gets_408(start_one_process: StartServer) -> None:
    with start_one_process(header_timeout=0.5) as url, connect(url) as sock:
        sock.sendall(HEAD + b"\r\n")
        assert read_response(sock).status == 200
        sock.sendall(HEAD)
        assert status_of(read_until_closed(sock)) == 408


def test_a_keep_alive_connection_that_sends_only_blank_lines_is_closed(start_one_process: StartServer) -> None:
    # Any bytes stop uvicorn's keep-alive timer, and the parser skips blank lines before a request.
    with start_one_process(header_timeout=0.5) as url, connect(url) as sock:
        sock.sendall(HEAD + b"\r\n")
        assert read_response(sock).status == 200
        sock.sendall(b"\r\n")
        assert read_until_closed(sock) == b""


def test_fifty_slow_connections_do_not_stop_a_normal_client(start_one_process: StartServer) -> None:
    with start_one_process(header_timeout=2.0) as url, server_log() as log:
        slow = [connect(url) for _ in range(50)]
        try:
            for sock in slow[::2]:
                sock.sendall(HEAD)
            assert_answered(url)
            for sock in slow:
                read_until_closed(sock)
        finally:
            for sock in slow:
                sock.close()
    assert log == []


# Send timeout


def test_a_client_that_never_reads_is_disconnected_after_the_send_timeout() -> None:
    ended = threading.Event()
    with serve(tiny_app(ended), lifespan="off", settings=Settings(send_timeout=0.5)) as url, server_log() as log:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with sock:
            sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: folyam.test\r\n\r\n")
            assert ended.wait(timeout=10), "the stream is still writing to a client that never reads"
            assert_answered(url)
            read_until_closed(sock)
    assert log == []


# Proxy headers


@pytest.mark.parametrize(
    ("forwarded_allow_ips", "statuses"),
    [(None, [200, 200, 200, 429, 429]), ("127.0.0.1", [200, 200, 200, 200, 200])],
    ids=["no proxy trusted", "loopback proxy trusted"],
)
def test_x_forwarded_for_counts_only_from_a_trusted_proxy(
    start_one_process: StartServer, forwarded_allow_ips: str | None, statuses: list[int]
) -> None:
    seen = []
    with start_one_process(rate_limit_per_minute=3, forwarded_allow_ips=forwarded_allow_ips) as url:
        for n in range(5):
            # A client of its own per question, so only the address could tie them together.
            headers = {**HTMX_HEADERS, "X-Forwarded-For": f"203.0.113.{n}"}
            with httpx.Client(timeout=10, headers=headers) as client:
                form = composer_form(client, url + "/")
                seen.append(client.post(url + form.pop("action"), data={**form, "query": "hi"}).status_code)
    assert seen == statuses
