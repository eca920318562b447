"""Streaming as a building block: a host app gives any async iterable of text (or a `Provider`) and gets
the answer shell for its own page and an SSE endpoint with replay, resume, stop and the timing, run by
Folyam's runner and rendered by its markdown renderer and sanitiser.

Litestar: `Litestar([...], plugins=[FolyamStreams()])`; handlers take `streams: NamedDependency[AnswerStreams]`.
Any other ASGI framework: `streams = StreamsApp()`, `app.mount("/folyam", streams)`, the host's lifespan
runs `streams.lifespan`, and `OwnerCookieMiddleware` gives each browser its owner id.
"""

from __future__ import annotations

from folyam.streaming._answers import (
    STATIC_DIR,
    AnswerSource,
    AnswerStreams,
    EndedAnswer,
    StreamedAnswer,
    text_pieces,
)
from folyam.streaming._asgi import StreamsApp
from folyam.streaming._events import event_cursor, follow_events
from folyam.streaming._litestar import AllowHook, FolyamStreams, answer_streams, owner_allowed
from folyam.streaming._owner import OWNER_COOKIE, OwnerCookieMiddleware, owner_of

__all__ = [
    "OWNER_COOKIE",
    "STATIC_DIR",
    "AllowHook",
    "AnswerSource",
    "AnswerStreams",
    "EndedAnswer",
    "FolyamStreams",
    "OwnerCookieMiddleware",
    "StreamedAnswer",
    "StreamsApp",
    "answer_streams",
    "event_cursor",
    "follow_events",
    "owner_allowed",
    "owner_of",
    "text_pieces",
]
