"""The event log on Redis Streams, shared by every process: an answer's events are entries whose ids are
their sequence numbers (`{seq}-0`), so a replay after a cursor is one XRANGE, and following is XREAD
(one for all of a process's readers: `folyam.redis_follower`).
The stream opens with an entry at `0-1` and closes with one at `{last}-1`; superseded tail-only entries
are deleted as the memory log drops them. Beside the stream, two strings gather the model text and the
thinking the events added: what another process records if the writer dies. The writer never waits:
appends are queued and sent in batches by one task, at most one batch per `batch_window`, each batch one
script call; keys expire after the retention once closed (and, as a safety net, a while after the last
write if nobody closes them).

The process that writes a stream also keeps it in memory (a `MemoryEventLog`, compacted the same way):
its own readers, usually the browser that asked, follow that copy and never wait on Redis. Readers in
other processes (behind a load balancer, most of them) follow the Redis stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import redis.asyncio as redis
from redis.exceptions import RedisError, ResponseError

from folyam.event_log import Event, MemoryEventLog, Retained, StreamState, UnknownStream
from folyam.redis_follower import Entry, RedisFollower
from folyam.redis_packed import PackedScript

__all__ = ["RedisEventLog"]

logger = logging.getLogger(__name__)
_OPEN_ID: Final = "0-1"
_PAGE: Final = 500  # entries per XRANGE page on replay
# As long as a tick of the runner's flush clock (`folyam.runner`), on which a process's answers flush
# together: a batch takes in a tick's events, where a shorter window sent about twice the batches (each
# a round trip, a packing and a reply: more than a batch's events cost). Readers elsewhere lag by this.
_BATCH_WINDOW: Final = 0.025

# One batch of writes. KEYS: each stream's events key, then its text and reasoning keys. ARGV: operations,
# each an opcode and the index of its stream's events key, then the operation's own arguments:
#   open                                      the opening entry (already there: a harmless failure)
#   event  id frame tail_only text reasoning  the entry; the text and thinking it adds are appended only
#                                             when the entry was added
#   delete n id1 .. idn                       superseded tail-only entries
#   close  id                                 the closing entry
#   forget                                    the stream's keys
#   expire ms                                 the stream's keys' time to live
# Returns the errors of entries that could not be added; everything else went through. (Each stream's keys
# are passed, but a batch spans streams: not for Redis Cluster, whose slots would split them.)
_WRITE_BATCH: Final = """
local errors = {}
local i = 1
while i <= #ARGV do
  local op, at = ARGV[i], tonumber(ARGV[i + 1])
  local key = KEYS[at]
  if op == 'e' then
    local added = redis.pcall('XADD', key, ARGV[i + 2], 'frame', ARGV[i + 3], 'tail_only', ARGV[i + 4])
    if type(added) == 'table' and added.err then
      errors[#errors + 1] = added.err
    else
      if ARGV[i + 5] ~= '' then redis.call('APPEND', KEYS[at + 1], ARGV[i + 5]) end
      if ARGV[i + 6] ~= '' then redis.call('APPEND', KEYS[at + 2], ARGV[i + 6]) end
    end
    i = i + 7
  elseif op == 'o' then
    redis.pcall('XADD', key, '0-1', 'open', '1')
    i = i + 2
  elseif op == 'd' then
    local n = tonumber(ARGV[i + 2])
    for j = 1, n do redis.call('XDEL', key, ARGV[i + 2 + j]) end
    i = i + 3 + n
  elseif op == 'c' then
    local added = redis.pcall('XADD', key, ARGV[i + 2], 'closed', '1')
    if type(added) == 'table' and added.err then errors[#errors + 1] = added.err end
    i = i + 3
  elseif op == 'f' then
    redis.call('DEL', key, KEYS[at + 1], KEYS[at + 2])
    i = i + 2
  else
    for k = at, at + 2 do redis.call('PEXPIRE', KEYS[k], ARGV[i + 2]) end
    i = i + 3
  end
end
return errors
"""
_OP_EVENT: Final = "e"
_OP_OPEN: Final = "o"
_OP_DELETE: Final = "d"
_OP_CLOSE: Final = "c"
_OP_FORGET: Final = "f"
_OP_EXPIRE: Final = "x"


def _events_key(stream_id: str) -> str:
    return f"folyam:events:{stream_id}"


def _text_key(stream_id: str) -> str:
    return f"folyam:text:{stream_id}"


def _reasoning_key(stream_id: str) -> str:
    return f"folyam:reasoning:{stream_id}"


Operation = tuple[str, Any]  # a kind ("open", "event", "close", "forget") and its payload


class RedisEventLog:
    def __init__(
        self, client: redis.Redis, *, retention: float, open_for: float, batch_window: float = _BATCH_WINDOW
    ) -> None:
        """`retention`: how long a closed stream stays; `open_for`: how long an open one may go without
        a write before it expires anyway (its process died and nobody ended it); `batch_window`: the
        least time between two batches (what readers elsewhere may lag behind the writer)."""
        # redis-py's result types are wide unions; the commands used here answer bytes, lists and tuples.
        self._redis: Any = client
        self._retention_ms = int(retention * 1000)
        self._open_ms = int(open_for * 1000)
        self._batch_window = batch_window
        self._write_batch = PackedScript(client, _WRITE_BATCH)
        # The streams opened here, for this process's readers (another process may end a stream whose
        # own process died: that one is not copied).
        self._local = MemoryEventLog()
        # Readers of streams written elsewhere all follow them through one XREAD.
        self._follower = RedisFollower(client)
        # When an open stream's expiry was last pushed back (once in a while is enough: it is a safety net).
        self._expiry_renewed: dict[str, float] = {}
        # Each stream's operations waiting for the next batch, and those of the batch being sent.
        self._pending: dict[str, list[Operation]] = {}
        self._sending: dict[str, list[Operation]] = {}
        # Resolved once the batch being sent, and the next, have been tried (made when a flush waits).
        self._sending_tried: asyncio.Future[None] | None = None
        self._next_tried: asyncio.Future[None] | None = None
        self._tail_only: dict[str, list[str]] = {}  # each stream's tail-only entries in Redis
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # -- Writing (one writer per stream: the process that runs the answer) --------------------------

    def open(self, stream_id: str) -> None:
        self._local.open(stream_id)
        self._queue(stream_id, "open", None)

    def append(self, stream_id: str, event: Event, text: str = "", reasoning: str = "") -> None:
        try:
            self._local.append(stream_id, event)
        except UnknownStream:
            pass  # not opened here: a stream another process began
        except ValueError:  # its first events were written elsewhere: only Redis has them all
            self._local.forget(stream_id)
        self._queue(stream_id, "event", (event, text, reasoning))

    def close(self, stream_id: str) -> None:
        with contextlib.suppress(UnknownStream):
            self._local.close(stream_id)
        self._queue(stream_id, "close", None)

    def forget(self, stream_id: str) -> None:
        # They would expire on their own; an answer deleted from the store (truncated) goes at once.
        self._local.forget(stream_id)
        self._queue(stream_id, "forget", None)

    def _queue(self, stream_id: str, kind: str, payload: Any) -> None:
        pending = self._pending.get(stream_id)
        if pending is None:
            self._pending[stream_id] = [(kind, payload)]
        else:
            pending.append((kind, payload))
        if not self._wake.is_set():
            self._idle.clear()
            self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write(), name="redis-event-log-writer")

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            # One batch per window: a pipeline per event (an event of each answer, one after another)
            # cost more than the events themselves.
            await asyncio.sleep(self._batch_window)
            self._wake.clear()
            batch, self._pending = self._pending, {}
            if not batch:
                self._idle.set()
                continue
            self._sending, self._sending_tried, self._next_tried = batch, self._next_tried, None
            try:
                await self._send(batch)
            except (RedisError, OSError) as exc:
                logger.warning("writing events to Redis failed (%s); retrying", type(exc).__name__)
                for stream_id, operations in batch.items():  # again, before anything queued since
                    self._pending[stream_id] = operations + self._pending.get(stream_id, [])
                self._wake.set()
                await asyncio.sleep(0.5)
            finally:
                tried, self._sending, self._sending_tried = self._sending_tried, {}, None
                if tried is not None:
                    tried.set_result(None)
            if not self._pending:
                self._idle.set()

    def _expiry_due(self, stream_id: str, opening: bool, now: float) -> bool:
        """Whether an open stream's keys get their expiry (again): when it opens, then every so often."""
        renewed = self._expiry_renewed.get(stream_id)
        return opening or renewed is None or now - renewed > self._open_ms / 4000

    async def _send(self, batch: dict[str, list[Operation]]) -> None:
        """The batch as one script call: a pipeline's commands (an XADD and an APPEND per event) each
        cost redis-py a packing, a parse and a timeout, about twice what the script costs in all. (The
        script's call is packed by hiredis: `folyam.redis_packed`.) What the batch changes here (the
        tail-only entries to delete later, the expiries renewed) is kept only once the script has run:
        a batch sent again after a failure is made again from the same state."""
        now = asyncio.get_running_loop().time()
        keys: list[str] = []
        args: list[Any] = []
        tails: dict[str, list[str] | None] = {}  # each stream's tail-only entries after the batch (None: gone)
        renewed: list[str] = []
        for stream_id, operations in batch.items():
            keys += (_events_key(stream_id), _text_key(stream_id), _reasoning_key(stream_id))
            index, last = len(keys) - 2, None  # the events key's (1-based in the script)
            tail = list(self._tail_only.get(stream_id, ()))
            for kind, payload in operations:
                if kind == "open":
                    args += (_OP_OPEN, index)
                elif kind == "event":
                    event, text, reasoning = payload
                    entry = f"{event.seq}-0"
                    if event.replaces_tail and tail:
                        args += (_OP_DELETE, index, len(tail), *tail)
                        tail = []
                    if event.tail_only:
                        tail.append(entry)
                    tail_only = b"1" if event.tail_only else b"0"
                    args += (_OP_EVENT, index, entry, event.frame, tail_only, text, reasoning)
                    last = event.seq
                elif kind == "forget":
                    args += (_OP_FORGET, index)
                else:
                    closing = last if last is not None else await self.last_seq(stream_id)
                    args += (_OP_CLOSE, index, f"{closing}-1")
            last_kind = operations[-1][0]
            tails[stream_id] = None if last_kind in ("forget", "close") else tail
            if last_kind == "forget":
                continue  # its keys are gone
            if last_kind == "close" or self._expiry_due(stream_id, last_kind == "open", now):
                args += (_OP_EXPIRE, index, self._retention_ms if last_kind == "close" else self._open_ms)
                if last_kind != "close":
                    renewed.append(stream_id)
        failures = [failure.decode(errors="replace") for failure in await self._write_batch(keys=keys, args=args)]
        for stream_id, kept in tails.items():
            if kept:
                self._tail_only[stream_id] = kept
            else:
                self._tail_only.pop(stream_id, None)
            if kept is None:
                self._expiry_renewed.pop(stream_id, None)
        for stream_id in renewed:
            self._expiry_renewed[stream_id] = now
        # An entry id at or below the stream's last is an event another process wrote first (it ended the
        # answer), or one this batch wrote before a retry: not worth a retry, which would fail the same
        # way forever (and its text is not appended twice).
        out_of_order = [failure for failure in failures if "equal or smaller" in failure]
        for failure in out_of_order:
            logger.warning("an event arrived after its stream had moved on: %s", failure)
        if len(out_of_order) < len(failures):
            raise ResponseError(next(failure for failure in failures if failure not in out_of_order))

    async def flush(self, stream_id: str | None = None) -> None:
        """Until what was queued (for `stream_id`, if given) has gone to Redis, or 5 s. One stream's
        flush waits for the batch that holds its operations (and, after a failed send, for the retries);
        the whole log's waits for the writer to be idle, which a busy process hardly ever is."""
        try:
            async with asyncio.timeout(5):
                if stream_id is None:
                    await self._idle.wait()
                    return
                loop = asyncio.get_running_loop()
                while True:
                    if stream_id in self._pending:
                        self._next_tried = tried = self._next_tried or loop.create_future()
                    elif stream_id in self._sending:
                        self._sending_tried = tried = self._sending_tried or loop.create_future()
                    else:
                        return
                    await asyncio.shield(tried)  # (one waiter's cancellation is not the others')
        except TimeoutError:
            logger.warning("events not yet written to Redis: %d streams waiting", len(self._pending))

    async def aclose(self) -> None:
        """Send what is queued, then stop the writer."""
        await self.flush()
        if self._writer is not None:
            self._writer.cancel()
        await self._follower.aclose()

    # -- Reading (any process) ------------------------------------------------------------------------

    async def state(self, stream_id: str) -> StreamState:
        if (local := await self._local.state(stream_id)) != "missing":
            return local
        entries = await self._redis.xrevrange(_events_key(stream_id), count=1)
        if not entries:
            return "missing"
        return "closed" if b"closed" in entries[0][1] else "open"

    async def last_seq(self, stream_id: str) -> int:
        entries = await self._redis.xrevrange(_events_key(stream_id), count=2)
        for entry_id, _ in entries:
            seq, _, part = entry_id.decode().partition("-")
            if part == "0":
                return int(seq)
        return 0

    async def text(self, stream_id: str) -> str:
        return bytes(await self._redis.get(_text_key(stream_id)) or b"").decode()

    async def reasoning(self, stream_id: str) -> str:
        return bytes(await self._redis.get(_reasoning_key(stream_id)) or b"").decode()

    async def retained(self, stream_id: str) -> Retained:
        entries = await self._redis.xrange(_events_key(stream_id))
        frames = [fields[b"frame"] for _, fields in entries if b"frame" in fields]
        return Retained(len(frames), sum(map(len, frames)))

    def follow(self, stream_id: str, after: int, idle_timeout: float) -> AsyncIterator[Sequence[Event]]:
        if self._local.has(stream_id):
            # This process's copy, as it is (not through a generator of ours: a hand-over per batch).
            return self._local.follow(stream_id, after, idle_timeout)
        return self._follow_redis(stream_id, after, idle_timeout)

    async def _follow_redis(self, stream_id: str, after: int, idle_timeout: float) -> AsyncIterator[Sequence[Event]]:
        key = _events_key(stream_id)
        position = f"{max(after, 0)}-0"
        while True:
            # Everything after the cursor, a page at a time (exclusive start: "(" + id).
            entries = await self._redis.xrange(key, min="(" + position, count=_PAGE)
            batch, closed, position = _events_of(entries, position)
            if batch:
                yield batch
            if closed:
                return
            if len(entries) < _PAGE:
                break
        # Then live, with every other stream this process follows from Redis.
        followed = self._follower.join(key, position, idle_timeout)
        try:
            while True:
                entries = await followed.next()
                if not entries:
                    yield ()  # idle_timeout without an event
                    continue
                batch, closed, position = _events_of(entries, position)
                if batch:
                    yield batch
                if closed:
                    return
        finally:
            self._follower.leave(followed)


def _events_of(entries: Sequence[Entry], position: str) -> tuple[list[Event], bool, str]:
    """The events among a stream's entries, whether its closing entry is one of them, and the last id."""
    batch, closed = [], False
    for entry_id, fields in entries:
        position = entry_id.decode()
        if b"closed" in fields:
            closed = True
        elif b"frame" in fields:
            seq = int(position.partition("-")[0])
            batch.append(Event(seq, bytes(fields[b"frame"]), tail_only=fields.get(b"tail_only") == b"1"))
    return batch, closed, position
