"""A round-robin reverse proxy for the tests: each request goes to the next backend (not each
connection: a browser keeps its connections), so consecutive requests of one page land on different
processes. Responses, event streams included, are passed on as they arrive."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import httpx

_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"host", b"content-length"}


class Balancer:
    def __init__(self, backends: list[str]) -> None:
        self._backends = itertools.cycle(backends)
        self.requests: list[str] = []  # the backend each request went to, in order

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        backend = next(self._backends)
        self.requests.append(backend)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP_BY_HOP]
        url = backend + scope["path"] + (("?" + scope["query_string"].decode()) if scope["query_string"] else "")
        async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client:
            request = client.build_request(scope["method"], url, headers=headers, content=body)
            response = await client.send(request, stream=True)
            try:
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status_code,
                        "headers": [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP],
                    }
                )
                disconnected = asyncio.ensure_future(_disconnect(receive))
                chunks = response.aiter_raw().__aiter__()
                try:
                    while True:
                        # A client that leaves is noticed at once, not when the next chunk comes.
                        chunk = asyncio.ensure_future(chunks.__anext__())
                        await asyncio.wait({chunk, disconnected}, return_when=asyncio.FIRST_COMPLETED)
                        if not chunk.done():
                            chunk.cancel()
                            break
                        if chunk.exception() is not None:
                            break  # StopAsyncIteration: the backend's response ended
                        await send({"type": "http.response.body", "body": chunk.result(), "more_body": True})
                finally:
                    disconnected.cancel()
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                await response.aclose()


async def _disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
