"""The event log: each generation's seq-numbered SSE frames, replayed after a cursor and followed live.

One writer (the generation) assigns sequence numbers; any number of readers follow. The in-memory log
is the default; the `EventLog` protocol is what a shared (Redis) log implements to scale out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Event", "EventLog", "MemoryEventLog", "UnknownStream"]


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    frame: bytes
    # The event replaces the answer's live tail; `only_tail`: changing the tail (replacing or extending
    # it) is all it does, so a later replacement supersedes it and a replay can skip it (a resume
    # sends the current state, not every past one).
    replaces_tail: bool = False
    only_tail: bool = False


class UnknownStream(LookupError):
    """Raised when a stream id was never opened (or has been dropped)."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(f"no event stream {stream_id!r}")
        self.stream_id = stream_id


class EventLog(Protocol):
    def open(self, stream_id: str) -> None: ...

    def append(self, stream_id: str, event: Event) -> None: ...

    def close(self, stream_id: str) -> None: ...

    def forget(self, stream_id: str) -> None: ...

    def __contains__(self, stream_id: str) -> bool: ...

    def follow(self, stream_id: str, after: int, idle_timeout: float) -> AsyncIterator[Sequence[Event]]:
        """Batches of events with seq > after, then live ones until the stream closes. Yields an
        empty batch after `idle_timeout` seconds without an event, so the caller can keep alive."""
        ...


@dataclass(slots=True)
class _Stream:
    events: list[Event] = field(default_factory=list)
    closed: bool = False
    # One future shared by every waiting reader; resolved and dropped on each change.
    waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.waiter is not None:
            if not self.waiter.done():
                self.waiter.set_result(None)
            self.waiter = None


class MemoryEventLog:
    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}

    def open(self, stream_id: str) -> None:
        self._streams.setdefault(stream_id, _Stream())

    def append(self, stream_id: str, event: Event) -> None:
        stream = self._get(stream_id)
        if stream.closed:
            raise ValueError(f"event stream {stream_id!r} is closed")
        if event.seq != len(stream.events) + 1:
            raise ValueError(f"event {event.seq} out of order; expected {len(stream.events) + 1}")
        stream.events.append(event)
        stream.wake()

    def close(self, stream_id: str) -> None:
        stream = self._get(stream_id)
        stream.closed = True
        stream.wake()

    def forget(self, stream_id: str) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            stream.closed = True
            stream.wake()

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self._streams

    async def follow(self, stream_id: str, after: int, idle_timeout: float) -> AsyncIterator[Sequence[Event]]:
        stream = self._get(stream_id)
        cursor = max(after, 0)  # events[i] has seq i + 1, so the cursor is also an index
        loop = asyncio.get_running_loop()
        while True:
            if len(stream.events) > cursor:
                # Everything available at once: one write per wake-up, not one per event.
                batch = stream.events[cursor:]
                cursor += len(batch)
                yield _skip_superseded_tails(batch)
                continue
            if stream.closed:
                return
            if stream.waiter is None:
                stream.waiter = loop.create_future()
            try:
                async with asyncio.timeout(idle_timeout):
                    # shield: one reader going away must not cancel the future the others wait on.
                    await asyncio.shield(stream.waiter)
            except TimeoutError:
                yield ()

    def _get(self, stream_id: str) -> _Stream:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise UnknownStream(stream_id) from None


def _skip_superseded_tails(batch: list[Event]) -> list[Event]:
    last_tail = next((i for i in range(len(batch) - 1, -1, -1) if batch[i].replaces_tail), -1)
    if last_tail <= 0:
        return batch
    return [event for i, event in enumerate(batch) if not (event.only_tail and i < last_tail)]
