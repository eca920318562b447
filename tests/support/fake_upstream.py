"""A fake OpenAI-compatible server: a real ASGI app speaking the chat-completions streaming wire
format (`data:` chunks, the usage chunk, `[DONE]`), with each fault on demand.

Tests script the next answers with `FakeUpstream.script(...)`; unscripted requests get a default
answer. `GET /v1/models` answers what `FakeUpstream.models` says (a list, an error status, garbage, slowly).
Every request is recorded, and so is when its connection was closed: lists of models in `model_requests`
(an app may ask for one whenever its cache expires), every other request in `requests` (a chat request's
body carries its `model` and `messages`).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

Fault = Literal[
    "none",
    "status",  # answer `status` with an OpenAI-style error body, before any chunk
    "hang",  # send nothing at all (the client's timeout fires before headers)
    "drop",  # send `fail_after` chunks, then drop the connection mid-body
    "error_event",  # send `fail_after` chunks, then an `error` chunk and end
    "stall",  # send `fail_after` chunks, then go silent (the client's read timeout fires)
]

DEFAULT_ANSWER = ["Hello", " from", " the", " fake", " upstream", "."]


@dataclass
class Script:
    chunks: list[str] = field(default_factory=lambda: list(DEFAULT_ANSWER))
    fault: Fault = "none"
    status: int = 500
    fail_after: int = 0
    # Seconds between chunks (the first chunk is sent at once, or after first_delay).
    delay: float = 0.0
    # True: `delay` apart on a schedule from the first chunk, as a model generates (the benchmarks' busy
    # upstream otherwise slowed every answer by its own late wake-ups, token after token). False: a
    # `delay` after each write, so each chunk comes in a read of its own (what some tests need).
    on_schedule: bool = False
    first_delay: float = 0.0
    usage: bool = True
    # A Retry-After header on a "status" fault.
    retry_after: str | None = None
    # Error messages ("status", "error_event") quote the request's headers back, as some servers do.
    echo_headers: bool = False
    # Replay these bytes as the whole response body, as a recorded server sent them (every other field
    # but `raw_status`, `content_type` and `write_size` is then ignored).
    raw: bytes | None = None
    raw_status: int = 200
    content_type: str = "text/event-stream"
    # Compress `raw` with gzip and say so in Content-Encoding (as a proxy in front of a server may).
    gzip: bool = False
    # Send `raw` in writes of this many bytes (None: one write), to cut lines and events apart.
    write_size: int | None = None
    # Sent before `chunks` as `delta.reasoning_content` (a reasoning model's thinking).
    reasoning: list[str] = field(default_factory=list)
    # Sent after `chunks` as `delta.refusal`.
    refusal: list[str] = field(default_factory=list)
    # Seconds between the last delta and the end (a reader following live sees the last delta's event).
    last_delay: float = 0.0
    # The last chunk's `finish_reason`; None sends no finish chunk.
    finish_reason: str | None = "stop"
    # False: the body ends (EOF) without `data: [DONE]` (and without the usage chunk).
    done: bool = True


DEFAULT_MODELS = ["fake-model", "fake-model-large"]


@dataclass
class ModelList:
    """What `GET /v1/models` answers: these ids (a non-string entry is sent as is), or an error status, or
    `raw` bytes; after `delay` seconds."""

    ids: list[Any] = field(default_factory=lambda: list(DEFAULT_MODELS))
    status: int = 200
    raw: bytes | None = None
    delay: float = 0.0


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    method: str = "POST"
    # When the client closed the connection (seen as http.disconnect), and when we stopped serving it.
    disconnected_at: float | None = None
    closed_at: float | None = None

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])


class FakeUpstream:
    def __init__(self) -> None:
        self._scripts: deque[Script] = deque()
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.model_requests: list[RecordedRequest] = []
        self.models = ModelList()

    def script(self, *scripts: Script) -> None:
        with self._lock:
            self._scripts.extend(scripts)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
            self.model_requests.clear()
            self.models = ModelList()

    def _next_script(self) -> Script:
        with self._lock:
            return self._scripts.popleft() if self._scripts else Script()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        record = RecordedRequest(
            path=scope["path"],
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=json.loads(body or b"{}"),
            method=scope["method"],
        )
        listing = scope["path"].rstrip("/").endswith("/models") and scope["method"] == "GET"
        with self._lock:
            (self.model_requests if listing else self.requests).append(record)
        watcher = asyncio.create_task(_watch_disconnect(receive, record))
        try:
            if scope["path"].rstrip("/").endswith("/chat/completions"):
                await self._chat(record, watcher, send)
            elif listing:
                await self._models(watcher, send)
            else:
                await _json(send, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        finally:
            watcher.cancel()
            record.closed_at = time.monotonic()

    async def _chat(self, record: RecordedRequest, disconnected: asyncio.Task[None], send: Any) -> None:
        script = self._next_script()
        model = record.body.get("model", "fake-model")
        echo = f" (request headers: {json.dumps(record.headers)})" if script.echo_headers else ""
        if script.raw is not None:
            await _replay(script, send)
            return
        if script.fault == "status":
            headers = [(b"retry-after", script.retry_after.encode())] if script.retry_after else []
            await _json(send, script.status, _error_body(script.status, echo), headers)
            return
        if script.fault == "hang":
            await disconnected
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
            }
        )
        await _event(send, _chunk(model, {"role": "assistant", "content": ""}))
        if script.first_delay:
            await asyncio.wait([disconnected], timeout=script.first_delay)
        loop = asyncio.get_running_loop()
        began = loop.time()
        for index, (key, text) in enumerate(_deltas(script)):
            if script.fault != "none" and index == script.fail_after:
                await self._fail(script, disconnected, send, echo)
                return
            wait = script.delay
            if script.on_schedule:
                # On the model's own clock: a chunk every `delay` seconds from the first, however late
                # this loop woke for the one before.
                wait = began + index * script.delay - loop.time()
            if index and wait > 0:
                await asyncio.wait([disconnected], timeout=wait)
            if disconnected.done():
                return  # the client went away: stop generating, as a real server does
            await _event(send, _chunk(model, {key: text}))
        if script.fault != "none" and script.fail_after >= len(_deltas(script)):
            await self._fail(script, disconnected, send, echo)
            return
        if script.last_delay:
            await asyncio.wait([disconnected], timeout=script.last_delay)
        if script.finish_reason is not None:
            await _event(send, _chunk(model, {}, finish_reason=script.finish_reason))
        if not script.done:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if script.usage and (record.body.get("stream_options") or {}).get("include_usage"):
            completion = len(_deltas(script))
            usage = {"prompt_tokens": 11, "completion_tokens": completion, "total_tokens": 11 + completion}
            await _event(send, {**_chunk(model, {}), "choices": [], "usage": usage})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _models(self, disconnected: asyncio.Task[None], send: Any) -> None:
        listing = self.models
        if listing.delay:
            await asyncio.wait([disconnected], timeout=listing.delay)
            if disconnected.done():
                return
        if listing.status != 200:
            await _json(send, listing.status, _error_body(listing.status))
        elif listing.raw is not None:
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": listing.raw})
        else:
            data = [{"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "fake"} for id in listing.ids]
            await _json(send, 200, {"object": "list", "data": data})

    async def _fail(self, script: Script, disconnected: asyncio.Task[None], send: Any, echo: str) -> None:
        if script.fault == "drop":
            # Raising after the response started makes uvicorn drop the connection without ending
            # the chunked body: the client sees the peer close mid-message.
            raise ConnectionAbortedError("fake upstream drops the connection")
        if script.fault == "error_event":
            message = "The server had an error while processing your request." + echo
            await _event(send, {"error": {"message": message}})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await disconnected  # stall


async def _replay(script: Script, send: Any) -> None:
    raw = script.raw or b""
    headers = [(b"content-type", script.content_type.encode()), (b"cache-control", b"no-cache")]
    if script.gzip:
        raw = gzip.compress(raw)
        headers.append((b"content-encoding", b"gzip"))
    await send({"type": "http.response.start", "status": script.raw_status, "headers": headers})
    size = script.write_size or len(raw) or 1
    for start in range(0, len(raw), size):
        await send({"type": "http.response.body", "body": raw[start : start + size], "more_body": True})
        if script.write_size:
            await asyncio.sleep(0)  # let each write go out on its own
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _deltas(script: Script) -> list[tuple[str, str]]:
    """The delta fields the script sends, in order: thinking, answer, refusal."""
    return [
        *(("reasoning_content", text) for text in script.reasoning),
        *(("content", text) for text in script.chunks),
        *(("refusal", text) for text in script.refusal),
    ]


async def _watch_disconnect(receive: Any, record: RecordedRequest) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    record.disconnected_at = time.monotonic()


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _error_body(status: int, echo: str = "") -> dict[str, Any]:
    kinds = {401: "invalid_api_key", 429: "rate_limit_exceeded", 404: "model_not_found"}
    return {"error": {"message": f"fake upstream error {status}{echo}", "type": kinds.get(status, "server_error")}}


async def _event(send: Any, payload: dict[str, Any]) -> None:
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _json(
    send: Any, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})
