"""Server-Sent Events: every frame is built here (in Litestar's SSE format, byte for byte), and all SSE
headers are set here."""

from __future__ import annotations

import re
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


_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")
_LF: Final = "\n"
_DATA_LINE: Final = "\r\ndata: "


def encode_event(seq: int, data: str, event: str | None = None) -> bytes:
    """One SSE frame, as Litestar's `ServerSentEventMessage(data=data, event=event, id=seq).encode()`
    makes it: CR, LF and CRLF in `data` become separate `data:` lines, so no text can end a frame early
    or inject a field, and the event's name loses its line breaks. Three string replaces, where Litestar's
    encoder writes every line on its own: a frame of a few dozen lines cost it ten times as much, and
    every event of every answer is encoded."""
    # str's own methods: a Markup's would escape their arguments, and return Markup.
    if "\r" in data:
        data = str.replace(str.replace(data, "\r\n", "\n"), "\r", "\n")
    head = f"id: {seq}\r\n" if event is None else f"id: {seq}\r\nevent: {_LINE_BREAK.sub('', event)}\r\n"
    return f"{head}data: {str.replace(data, _LF, _DATA_LINE)}\r\n\r\n".encode()


def event_stream(frames: AsyncIterable[bytes]) -> Stream:
    return Stream(frames, media_type="text/event-stream", headers=HEADERS)
