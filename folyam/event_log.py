"""The event log: each generation's seq-numbered SSE frames, replayed after a cursor and followed live.

One writer (the generation) assigns sequence numbers; any number of readers follow. The log keeps what
a replay needs, not every frame: an event that replaces the live tail makes every earlier event that
only changed the tail useless to any reader, wherever its cursor, so those are dropped at once. What a
finished answer keeps is then its finished blocks, its status and little else.

The in-memory log is the one-process default; `folyam.redis_event_log.RedisEventLog` shares the log
between processes through Redis Streams. Writes are synchronous for the writer (the redis log queues
them and sends them in batches), reads are async.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = ["Event", "EventLog", "MemoryEventLog", "Retained", "StreamState", "UnknownStream"]

StreamState = Literal["missing", "open", "closed"]


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    frame: bytes
    # The event replaces the answer's whole live tail, so every earlier `tail_only` event is superseded.
    replaces_tail: bool = False
    # Changing the tail (replacing or changing part of it) is all the event does.
    tail_only: bool = False


@dataclass(frozen=True, slots=True)
class Retained:
    """What a stream keeps in memory: its events and their bytes."""

    events: int
    bytes: int


class UnknownStream(LookupError):
    """Raised when a stream id was never opened (or has been dropped)."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(f"no event stream {stream_id!r}")
        self.stream_id = stream_id


class EventLog(Protocol):
    def open(self, stream_id: str) -> None: ...

    def append(self, stream_id: str, event: Event, text: str = "", reasoning: str = "") -> None:
        """Add the next event; `text` and `reasoning` are the model text and thinking it adds, kept (by a
        shared log) so that another process can record what arrived if this one dies."""

    def close(self, stream_id: str) -> None: ...

    def forget(self, stream_id: str) -> None: ...

    async def state(self, stream_id: str) -> StreamState: ...

    async def last_seq(self, stream_id: str) -> int: ...

    async def text(self, stream_id: str) -> str: ...

    async def reasoning(self, stream_id: str) -> str: ...

    def follow(self, stream_id: str, after: int, idle_timeout: float) -> AsyncIterator[Sequence[Event]]:
        """Batches of events with seq > after, then live ones until the stream closes. Yields an
        empty batch after `idle_timeout` seconds without an event, so the caller can keep alive."""
        ...

    async def retained(self, stream_id: str) -> Retained: ...

    async def flush(self, stream_id: str | None = None) -> None:
        """Wait until everything appended so far (to `stream_id`'s stream, if given) is stored where every
        reader sees it."""

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Stream:
    # events[seq - 1]; None where a later event superseded it.
    events: list[Event | None] = field(default_factory=list)
    tail_only: list[int] = field(default_factory=list)  # indices of kept tail-only events
    kept: int = 0
    kept_bytes: int = 0
    closed: bool = False
    # The waiting readers' futures, each reader's own (a reader going away cancels only its own, so no
    # shield); all resolved and dropped on each change.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def wake(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()


class IdleWait:
    """A reader's waits for the next change, each ended by the change or by `timeout` seconds without one.
    One timer serves all of a reader's waits and is set again only when it fires before its wait's
    deadline: not a timer set and cancelled for every event of every reader."""

    __slots__ = ("_deadline", "_future", "_loop", "_timeout", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self._future: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def begin(self) -> asyncio.Future[None]:
        self._future = future = self._loop.create_future()
        self._deadline = self._loop.time() + self._timeout
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._expire)
        return future

    def _expire(self) -> None:
        self._timer = None
        future = self._future
        if future is None or future.done():
            return  # not waiting now: the next wait sets the timer again
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._expire)  # a later wait's deadline
        else:
            future.set_result(None)

    def end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class MemoryEventLog:
    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}

    def open(self, stream_id: str) -> None:
        self._streams.setdefault(stream_id, _Stream())

    def append(self, stream_id: str, event: Event, text: str = "", reasoning: str = "") -> None:
        stream = self._get(stream_id)
        if stream.closed:
            raise ValueError(f"event stream {stream_id!r} is closed")
        if event.seq != len(stream.events) + 1:
            raise ValueError(f"event {event.seq} out of order; expected {len(stream.events) + 1}")
        if event.replaces_tail:
            for index in stream.tail_only:
                superseded = stream.events[index]
                if superseded is not None:
                    stream.kept -= 1
                    stream.kept_bytes -= len(superseded.frame)
                    stream.events[index] = None
            stream.tail_only.clear()
        if event.tail_only:
            stream.tail_only.append(len(stream.events))
        stream.events.append(event)
        stream.kept += 1
        stream.kept_bytes += len(event.frame)
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

    def has(self, stream_id: str) -> bool:
        """Whether the stream is here (open or closed)."""
        return stream_id in self._streams

    async def state(self, stream_id: str) -> StreamState:
        stream = self._streams.get(stream_id)
        return "missing" if stream is None else "closed" if stream.closed else "open"

    async def last_seq(self, stream_id: str) -> int:
        return len(self._get(stream_id).events)

    async def text(self, stream_id: str) -> str:
        return ""  # only a shared log needs it: here the process that runs the answer serves it too

    async def reasoning(self, stream_id: str) -> str:
        return ""  # (as `text`)

    async def retained(self, stream_id: str) -> Retained:
        stream = self._get(stream_id)
        return Retained(stream.kept, stream.kept_bytes)

    async def flush(self, stream_id: str | None = None) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def follow(self, stream_id: str, after: int, idle_timeout: float) -> AsyncIterator[Sequence[Event]]:
        stream = self._get(stream_id)
        cursor = max(after, 0)  # events[i] has seq i + 1, so the cursor is also an index
        wait = IdleWait(asyncio.get_running_loop(), idle_timeout)
        waiter: asyncio.Future[None] | None = None
        try:
            while True:
                if len(stream.events) > cursor:
                    # Everything available at once: one write per wake-up, not one per event.
                    batch = [event for event in stream.events[cursor:] if event is not None]
                    cursor = len(stream.events)
                    if batch:
                        yield batch
                    continue
                if stream.closed:
                    return
                waiter = wait.begin()
                stream.waiters.append(waiter)
                await waiter
                waiter = None
                if len(stream.events) == cursor and not stream.closed:
                    yield ()  # woken by the timer: idle_timeout without a change
        finally:
            wait.end()
            if waiter is not None and waiter in stream.waiters:  # this reader is leaving mid-wait
                stream.waiters.remove(waiter)

    def _get(self, stream_id: str) -> _Stream:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise UnknownStream(stream_id) from None
