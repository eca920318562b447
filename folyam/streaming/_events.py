"""Serving one answer's event stream: the reader's cursor, then replay and follow. Folyam's own routes
and the host-app adapters all serve streams through these."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Final

from folyam.event_log import EventLog
from folyam.sse import KEEPALIVE_FRAME

__all__ = ["event_cursor", "follow_events"]

_CURSOR: Final = re.compile(r"[0-9]{1,18}")  # ASCII digits only: int() accepts "²" where isdigit() does


def event_cursor(last_event_id: str | None, after: int | None) -> int:
    """The seq a reader has seen: its `Last-Event-ID` header, else its `?after=`, else 0."""
    # The header is what the SSE client sends on reconnect, so it is newer than ?after=.
    value = (last_event_id or "").strip()
    if _CURSOR.fullmatch(value):  # ids are small; a huge or odd one is no reason to fail
        return int(value)
    return max(after or 0, 0)


async def follow_events(
    event_log: EventLog,
    stream_id: str,
    cursor: int,
    *,
    keepalive: float,
    tick: float | None = None,
    on_idle: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncGenerator[bytes]:
    """The stream's frames after `cursor`, then live ones until it closes (its last event is `done`);
    a keep-alive comment after `keepalive` quiet seconds. Every `tick` quiet seconds (default:
    `keepalive`) `on_idle` may look around; when it returns True the stream's next events are expected
    at once (it ended the answer), and no comment is sent."""
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    async for batch in event_log.follow(stream_id, cursor, keepalive if tick is None else tick):
        if batch:
            quiet_since = loop.time()
            yield b"".join([event.frame for event in batch])
            continue
        if on_idle is not None and await on_idle():
            continue  # its last events come next
        if loop.time() - quiet_since >= keepalive:
            quiet_since = loop.time()
            yield KEEPALIVE_FRAME
