"""A TCP proxy on loopback whose open connections a test can cut, as a network drop would."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.cuts = 0
        self.connections = 0
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port: int = sock.getsockname()[1]
        self._sock = sock

    def start(self) -> None:
        ready = threading.Event()

        async def serve() -> None:
            self._server = await asyncio.start_server(self._handle, sock=self._sock)
            ready.set()

        self._thread.start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop)
        ready.wait(5)

    def cut(self) -> int:
        """Abort every open connection (both sides see a reset); returns how many were cut."""

        async def abort_all() -> int:
            writers = list(self._writers)
            for writer in writers:
                writer.transport.abort()
            self._writers.clear()
            return len(writers)

        count = asyncio.run_coroutine_threadsafe(abort_all(), self._loop).result(5)
        self.cuts += 1
        return count

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update({client_writer, upstream_writer})
        await asyncio.gather(
            _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer), return_exceptions=True
        )
        self._writers.difference_update({client_writer, upstream_writer})


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@contextmanager
def tcp_proxy(base_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """Proxy a served app: yields the proxy and the base URL that goes through it."""
    proxy = TcpProxy(int(base_url.rsplit(":", 1)[1]))
    proxy.start()
    try:
        yield proxy, f"http://127.0.0.1:{proxy.port}"
    finally:
        proxy.stop()
