"""A plain HTTP forward proxy on loopback (absolute-form requests, no CONNECT), as a corporate proxy in
front of a model server would be: it records each request line with its Proxy-Authorization, and relays
the request to the origin it names."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit


@dataclass
class ForwardProxy:
    # (request line, Proxy-Authorization or None), one per request relayed.
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, version = head[0].split(" ")
            headers = [line for line in head[1:] if line]
            auth = next((_value(line) for line in headers if _named(line, "proxy-authorization")), None)
            self.seen.append((head[0], auth))
            origin = urlsplit(target)
            assert origin.hostname is not None and origin.port is not None
            upstream_reader, upstream_writer = await asyncio.open_connection(origin.hostname, origin.port)
            path = origin.path + (f"?{origin.query}" if origin.query else "")
            hop_by_hop = ("proxy-authorization", "proxy-connection", "connection")
            kept = [line for line in headers if not _named(line, *hop_by_hop)]
            request_head = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""])
            upstream_writer.write(request_head.encode("latin-1"))
            # One request per connection: the origin closes after its answer, and so do we.
            to_origin = asyncio.create_task(_pipe(reader, upstream_writer))
            await _pipe(upstream_reader, writer)
            to_origin.cancel()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for each in (writer, upstream_writer):
                if each is not None:
                    each.close()
                    with contextlib.suppress(ConnectionError):
                        await each.wait_closed()


def _value(line: str) -> str:
    return line.split(":", 1)[1].strip()


def _named(line: str, *names: str) -> bool:
    return line.split(":", 1)[0].strip().lower() in names


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()
