"""One blocking XREAD for every Redis stream a process's readers follow live.

A reader of an answer that runs in another process follows that answer's Redis stream. Each reader's own
blocking XREAD held a connection for the whole answer and cost a round trip per event, per reader: behind
a load balancer, where a browser's event stream usually lands on another process than its question, that
was most readers. Here one task reads every followed stream with one XREAD on a connection of its own and
hands each reader the entries after its position. A reader that joins (or falls behind) interrupts the
XREAD with CLIENT UNBLOCK, so the next one includes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from folyam.event_log import IdleWait
from folyam.redis_packed import send

__all__ = ["Entry", "FollowedStream", "RedisFollower"]

Entry = tuple[bytes, dict[bytes, bytes]]  # an entry's id and fields, as XREAD answers them
_PAGE: Final = 500  # entries per stream per XREAD
# The longest an XREAD blocks: a reader whose interruption crossed the XREAD on its way waits this long.
_BLOCK_MS: Final = 250
_XREAD: Final = (b"XREAD", b"COUNT", str(_PAGE).encode(), b"BLOCK", str(_BLOCK_MS).encode(), b"STREAMS")
# A lost connection is made again after a pause, for this long before its readers are told.
_RECONNECT_PAUSE: Final = 0.2
_RECONNECT_SECONDS: Final = 5.0


def entry_position(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id as numbers, to compare ("10-0" comes after "9-1")."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


class FollowedStream:
    """One reader's live entries of one stream, after its position."""

    __slots__ = ("_entries", "_error", "_position", "_wait", "_waiter", "key")

    def __init__(self, key: bytes, position: str, idle_timeout: float) -> None:
        self.key = key
        self._position = entry_position(position)
        self._entries: list[Entry] = []
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wait = IdleWait(asyncio.get_running_loop(), idle_timeout)

    @property
    def position(self) -> tuple[int, int]:
        return self._position

    async def next(self) -> list[Entry]:
        """The entries that came since the last call, waiting for some; none after the idle timeout."""
        if not self._entries and self._error is None:
            self._waiter = self._wait.begin()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._error is not None:
            raise self._error
        entries, self._entries = self._entries, []
        return entries

    def deliver(self, entries: list[tuple[tuple[int, int], Entry]]) -> None:
        """`entries` with their positions (read once for all of a stream's readers)."""
        fresh = [entry for position, entry in entries if position > self._position]
        if not fresh:
            return
        self._entries += fresh
        self._position = entries[-1][0]
        self._wake()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._wake()

    def close(self) -> None:
        self._wait.end()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class RedisFollower:
    """The process's one live reader of Redis streams (see the module's docstring). Its task runs while
    somebody follows; `aclose` stops it."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis: Any = client  # (redis-py's result types are wide unions)
        self._followers: dict[bytes, set[FollowedStream]] = {}  # by stream key
        # Each followed stream's earliest reader position, as XREAD takes it: kept up to date as readers
        # join, leave and read, not made again for every XREAD.
        self._ids: dict[bytes, bytes] = {}
        self._task: asyncio.Task[None] | None = None
        self._client_id: int | None = None  # the blocking connection's, while it reads
        self._unblocking: set[asyncio.Task[None]] = set()

    def join(self, key: str, position: str, idle_timeout: float) -> FollowedStream:
        """Follow `key` from after `position` (an entry id)."""
        follower = FollowedStream(key.encode(), position, idle_timeout)
        self._followers.setdefault(follower.key, set()).add(follower)
        self._update(follower.key)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-event-log-follower")
        else:
            self._interrupt()
        return follower

    def leave(self, follower: FollowedStream) -> None:
        follower.close()
        followers = self._followers.get(follower.key)
        if followers is not None:
            followers.discard(follower)
            self._update(follower.key)  # (the next XREAD leaves a stream nobody follows out)

    async def aclose(self) -> None:
        for task in [self._task, *self._unblocking]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _update(self, key: bytes) -> None:
        followers = self._followers.get(key)
        if followers:
            self._ids[key] = b"%d-%d" % min(f.position for f in followers)
        else:
            self._followers.pop(key, None)
            self._ids.pop(key, None)

    async def _run(self) -> None:
        reconnecting_since: float | None = None
        loop = asyncio.get_running_loop()
        pool = self._redis.connection_pool
        try:
            while self._followers:
                # The pool's, for as long as somebody follows. (A read cancelled or cut off before its reply:
                # redis-py closes the connection itself, so it goes back to the pool with none to come.)
                connection = await pool.get_connection()
                try:
                    self._client_id = int(await send(connection, (b"CLIENT", b"ID")))
                    while self._followers:
                        await self._read(connection)
                        reconnecting_since = None
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    # A lost connection (a Redis restart, a proxy's idle timeout): the readers keep their
                    # positions, so a new one reads on from there. Only a Redis gone for good ends them.
                    reconnecting_since = reconnecting_since or loop.time()
                    if loop.time() - reconnecting_since > _RECONNECT_SECONDS:
                        raise
                    await asyncio.sleep(_RECONNECT_PAUSE)
                finally:
                    self._client_id = None
                    await pool.release(connection)
        except (RedisError, OSError) as exc:
            for followers in self._followers.values():
                for follower in followers:
                    follower.fail(exc)
            self._followers.clear()
            self._ids.clear()
        finally:
            self._task = None  # (no await since the last look at the readers: a new one starts a new task)

    async def _read(self, connection: Any) -> None:
        """One XREAD of every followed stream, from the earliest position of its readers; each reader
        takes what is new to it. Packed by hiredis (`folyam.redis_packed`): for a few hundred streams,
        redis-py's packing cost more than everything else here."""
        answer = await send(connection, (*_XREAD, *self._ids, *self._ids.values()))
        # A map in RESP3 (redis-py's default from version 8), pairs in RESP2; nothing when the block ended.
        for key, entries in answer.items() if isinstance(answer, dict) else answer or ():
            followers = self._followers.get(key)
            if not followers:
                continue  # left meanwhile
            decoded = [
                (entry_position(entry_id), (entry_id, dict(zip(fields[::2], fields[1::2], strict=True))))
                for entry_id, fields in entries
            ]
            for follower in list(followers):
                follower.deliver(decoded)
            self._update(key)

    def _interrupt(self) -> None:
        """End the XREAD under way, so the next one reads the streams as they are now."""
        if self._client_id is None:
            return  # not reading yet: its first XREAD includes the reader
        task = asyncio.get_running_loop().create_task(self._unblock(self._client_id))
        self._unblocking.add(task)
        task.add_done_callback(self._unblocking.discard)

    async def _unblock(self, client_id: int) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._redis.client_unblock(client_id)
