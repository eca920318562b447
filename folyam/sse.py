"""Server-Sent Events: every frame is built by Litestar's SSE encoder, and all SSE headers are set here."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Final

from litestar.response import Stream
from litestar.response.sse import ServerSentEventMessage

__all__ = ["KEEPALIVE_FRAME", "encode_event", "event_stream"]

HEADERS: Final = {
    # Per-session content: not kept by any cache (see folyam.security, which sets it on every page too).
    "Cache-Control": "no-store",
    # Tells nginx and friends not to buffer the stream.
    "X-Accel-Buffering": "no",
}

KEEPALIVE_FRAME: Final = ServerSentEventMessage(data=None, comment="keep-alive").encode()


def encode_event(seq: int, data: str, event: str | None = None) -> bytes:
    """One SSE frame. The encoder splits CR, LF and CRLF into separate `data:` lines, so no text can
    end a frame early or inject a field."""
    return ServerSentEventMessage(data=data, event=event, id=seq).encode()


def event_stream(frames: AsyncIterable[bytes]) -> Stream:
    return Stream(frames, media_type="text/event-stream", headers=HEADERS)
