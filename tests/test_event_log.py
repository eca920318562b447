from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as redis

from folyam.event_log import Event, EventLog, MemoryEventLog, UnknownStream
from folyam.redis_coordination import redis_client
from folyam.redis_event_log import RedisEventLog


def event(seq: int) -> Event:
    return Event(seq, f"frame {seq}".encode())


async def collect(log: EventLog, stream_id: str, after: int) -> list[Event]:
    return [e async for batch in log.follow(stream_id, after, idle_timeout=5) for e in batch]


async def test_replays_after_the_cursor_then_ends_when_closed() -> None:
    log = MemoryEventLog()
    log.open("g")
    for seq in (1, 2, 3):
        log.append("g", event(seq))
    log.close("g")
    assert await collect(log, "g", 0) == [event(1), event(2), event(3)]
    assert await collect(log, "g", 2) == [event(3)]
    assert await collect(log, "g", 3) == []
    assert await collect(log, "g", -5) == [event(1), event(2), event(3)]


async def test_followers_see_live_events_in_order() -> None:
    log = MemoryEventLog()
    log.open("g")
    readers = [asyncio.create_task(collect(log, "g", 0)) for _ in range(3)]
    await asyncio.sleep(0)
    for seq in range(1, 6):
        log.append("g", event(seq))
        await asyncio.sleep(0)
    log.close("g")
    for result in await asyncio.gather(*readers):
        assert result == [event(n) for n in range(1, 6)]


async def test_one_reader_leaving_does_not_disturb_the_others() -> None:
    log = MemoryEventLog()
    log.open("g")
    leaving = asyncio.create_task(collect(log, "g", 0))
    staying = asyncio.create_task(collect(log, "g", 0))
    await asyncio.sleep(0.01)
    leaving.cancel()
    await asyncio.sleep(0)
    log.append("g", event(1))
    log.close("g")
    assert await staying == [event(1)]


async def test_idle_followers_get_a_keepalive_tick() -> None:
    log = MemoryEventLog()
    log.open("g")
    stream = log.follow("g", 0, idle_timeout=0.01)
    assert await anext(stream) == ()
    log.append("g", event(1))
    log.append("g", event(2))
    assert await anext(stream) == [event(1), event(2)]  # one batch
    await stream.aclose()


async def test_the_keepalive_tick_counts_from_the_last_event() -> None:
    log = MemoryEventLog()
    log.open("g")
    loop = asyncio.get_running_loop()
    timeout = 0.2
    seen: list[tuple[Sequence[Event], float]] = []

    async def read() -> None:
        async for batch in log.follow("g", 0, idle_timeout=timeout):
            seen.append((batch, loop.time()))

    reading = asyncio.create_task(read())
    appended = [loop.time()]
    for seq in range(1, 9):
        await asyncio.sleep(timeout / 4)  # the reader waits between them
        log.append("g", event(seq))
        appended.append(loop.time())
    await asyncio.sleep(timeout * 1.5)
    log.close("g")
    await reading
    assert [e for batch, _ in seen for e in batch] == [event(n) for n in range(1, 9)]
    first_tick = next(at for batch, at in seen if not batch)
    # No tick while events kept coming (unless the loop stalled long enough for one), one after.
    if max(b - a for a, b in itertools.pairwise(appended)) < timeout / 2:
        assert first_tick - appended[-1] >= timeout


def test_out_of_order_or_closed_appends_are_refused() -> None:
    log = MemoryEventLog()
    log.open("g")
    with pytest.raises(ValueError, match="event 2 out of order; expected 1"):
        log.append("g", event(2))
    log.append("g", event(1))
    log.close("g")
    with pytest.raises(ValueError, match="closed"):
        log.append("g", event(2))


async def test_unknown_streams_raise() -> None:
    log = MemoryEventLog()
    assert await log.state("nope") == "missing"
    with pytest.raises(UnknownStream, match="'nope'"):
        await collect(log, "nope", 0)
    with pytest.raises(UnknownStream):
        log.append("nope", event(1))


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_forgotten_stream_is_gone_at_once(request: pytest.FixtureRequest, kind: str) -> None:
    client = redis_client(request.getfixturevalue("redis").fresh_url()) if kind == "redis" else None
    log: EventLog = MemoryEventLog() if client is None else RedisEventLog(client, retention=60, open_for=60)
    try:
        for stream_id in ("kept", "gone"):
            log.open(stream_id)
            log.append(stream_id, event(1), "text", "thought")
            log.close(stream_id)
        log.forget("gone")
        await log.flush()
        assert (await log.state("kept"), await log.state("gone")) == ("closed", "missing")
        if client is not None:  # its text and thinking with it
            assert await client.keys("folyam:*:gone") == []
            assert (await log.text("kept"), await log.reasoning("kept")) == ("text", "thought")
    finally:
        await log.aclose()
        if client is not None:
            await client.aclose()


@contextlib.asynccontextmanager
async def two_processes(
    request: pytest.FixtureRequest, *, reader_protocol: int | None = None
) -> AsyncIterator[tuple[redis.Redis, RedisEventLog, RedisEventLog]]:
    """Two logs on one (fresh) Redis database, as two processes have them, each with its own client: the
    first's client, the first log (the one that runs the answer), the second (one that only reads it)."""
    url = request.getfixturevalue("redis").fresh_url()
    clients = [
        redis_client(url),
        redis.from_url(url, protocol=reader_protocol) if reader_protocol else redis_client(url),
    ]
    logs = [RedisEventLog(client, retention=60, open_for=60) for client in clients]
    try:
        yield clients[0], logs[0], logs[1]
    finally:
        for log in logs:
            await log.aclose()
        for client in clients:
            await client.aclose()


async def command_calls(client: object, *commands: str) -> dict[str, int]:
    """How many times the Redis server ran each command so far (INFO commandstats)."""
    stats = await client.info("commandstats")  # type: ignore[attr-defined]
    return {command: int(stats.get(f"cmdstat_{command}", {}).get("calls", 0)) for command in commands}


async def test_the_writing_process_follows_its_own_copy_and_another_reads_the_redis_stream(
    request: pytest.FixtureRequest,
) -> None:
    # Two logs on one Redis are two processes: one runs the answer, the other only reads it.
    expected = [event(1), Event(3, b"tail again", replaces_tail=True), event(4)]
    async with two_processes(request) as (writer_client, writer, reader):
        writer.open("g")
        writer.append("g", event(1), "a")
        writer.append("g", Event(2, b"tail", tail_only=True), "b")
        following_here = asyncio.create_task(collect(writer, "g", 0))
        await asyncio.sleep(0.05)
        writer.append("g", Event(3, b"tail again", replaces_tail=True), "c")
        writer.append("g", event(4), "d")
        writer.close("g")
        before = await command_calls(writer_client, "xread", "xrange", "xrevrange")
        # Live, then closed: what the writer's own reader saw came from memory, without a Redis read; a
        # replay there is compacted as Redis's copy is.
        assert [e.seq for e in await following_here] == [1, 2, 3, 4]
        assert [(e.seq, e.frame) for e in await collect(writer, "g", 0)] == [(e.seq, e.frame) for e in expected]
        assert await writer.state("g") == "closed"
        assert await command_calls(writer_client, "xread", "xrange", "xrevrange") == before
        await writer.flush()
        # Another process reads the same events, compacted the same way, from Redis.
        assert [(e.seq, e.frame) for e in await collect(reader, "g", 0)] == [(e.seq, e.frame) for e in expected]
        assert [(e.seq, e.frame) for e in await collect(reader, "g", 3)] == [(4, b"frame 4")]
        assert (await command_calls(writer_client, "xrange"))["xrange"] > before["xrange"]
        assert (await reader.state("g"), await reader.text("g")) == ("closed", "abcd")


async def test_writes_go_in_batches_and_an_open_stream_s_expiry_is_not_renewed_per_event(
    request: pytest.FixtureRequest,
) -> None:
    client = redis_client(request.getfixturevalue("redis").fresh_url())
    log = RedisEventLog(client, retention=30, open_for=600, batch_window=0.01)
    try:
        before = await command_calls(client, "pexpire", "xadd", "append", "evalsha")
        log.open("g")
        for seq in range(1, 41):
            log.append("g", event(seq), "x")
            if seq % 10 == 0:
                await log.flush()  # four batches of ten
        # Each batch is one call (a script), whatever it holds; every event's entry and text are in it.
        sent = await command_calls(client, "xadd", "append", "evalsha")
        assert sent["evalsha"] - before["evalsha"] == 4
        assert (sent["xadd"] - before["xadd"], sent["append"] - before["append"]) == (41, 40)
        assert await client.get("folyam:text:g") == b"x" * 40
        assert 500_000 < await client.pttl("folyam:events:g") <= 600_000
        log.close("g")
        await log.flush()
        after = await command_calls(client, "pexpire", "xadd")
        assert after["xadd"] - before["xadd"] == 42  # open, 40 events, closed
        # Its three keys (events, text, reasoning) when the stream opened and when it closed; not per batch
        # or event.
        assert after["pexpire"] - before["pexpire"] == 6
        assert 0 < await client.pttl("folyam:events:g") <= 30_000
        assert await client.pttl("folyam:text:g") > 0
    finally:
        await log.aclose()
        await client.aclose()


async def test_one_stream_s_flush_waits_for_its_own_batch_not_for_a_busy_writer_to_go_idle(
    request: pytest.FixtureRequest,
) -> None:
    # An answer's end waits for its last events to reach Redis before its lease goes. In a busy process
    # other answers queue events on every flush tick, so the writer is hardly ever idle: that answer's
    # wait is for the batch that holds its events, not for a quiet moment.
    async with two_processes(request) as (_, writer, reader):
        busy_seq = itertools.count(1)
        writer.open("busy")

        async def keep_busy() -> None:
            while True:
                writer.append("busy", event(next(busy_seq)), "x")
                await asyncio.sleep(0.002)

        appending = asyncio.create_task(keep_busy())
        try:
            await asyncio.sleep(0.1)
            writer.open("g")
            writer.append("g", event(1), "a")
            writer.close("g")
            started = asyncio.get_running_loop().time()
            await writer.flush("g")
            waited = asyncio.get_running_loop().time() - started
            # Its entries are in Redis for any other process (the batch after the window, or the next).
            assert (await reader.state("g"), await reader.text("g")) == ("closed", "a")
            assert waited < 1.0  # (the whole writer's flush would wait out its 5 s limit)
            assert not writer._idle.is_set()
        finally:
            appending.cancel()
        await writer.flush()
        assert await reader.last_seq("busy") == next(busy_seq) - 1


async def test_a_batch_sent_again_after_a_failure_still_deletes_what_its_events_superseded(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    # A tail-only event superseded by the next one is deleted from Redis with that next event's batch. If
    # the batch's send fails, the batch made again must still delete it, or another process's replay
    # would carry every superseded tail (and the stream would keep them until it expires).
    async with two_processes(request) as (client, writer, reader):
        writer.open("g")
        writer.append("g", Event(1, b"tail 1", tail_only=True), "a")
        await writer.flush("g")
        send = writer._write_batch
        failures = 0

        async def fail_once(keys: Sequence[object], args: Sequence[object]) -> object:
            nonlocal failures
            if not failures:
                failures += 1
                raise redis.ConnectionError("lost")
            return await send(keys=keys, args=args)

        writer._write_batch = fail_once  # type: ignore[assignment]
        writer.append("g", Event(2, b"tail 2", replaces_tail=True, tail_only=True), "b")
        await writer.flush("g")
        assert failures == 1 and "retrying" in caplog.text
        writer.append("g", Event(3, b"tail 3", replaces_tail=True, tail_only=True), "c")
        writer.close("g")
        await writer.flush("g")
        entries = await client.xrange("folyam:events:g")
        assert [entry_id for entry_id, _ in entries] == [b"0-1", b"3-0", b"3-1"]
        assert [e.frame for e in await collect(reader, "g", 0)] == [b"tail 3"]
        assert await reader.text("g") == "abc"


async def test_an_entry_written_already_is_skipped_with_its_text_and_thinking_and_the_rest_goes_in(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    # A batch sent again (its first try's reply was lost), or an event another process wrote first: the
    # entry is there already, so its text must not be appended a second time.
    async with two_processes(request) as (_, first, second):
        first.open("g")
        first.append("g", event(1), "a", "thinking ")
        first.append("g", event(2), "b", "more ")
        await first.flush()
        second.append("g", Event(2, b"written twice"), "b", "more ")
        second.append("g", event(3), "c", "done")
        second.close("g")
        await second.flush()
        assert [(e.seq, e.frame) for e in await collect(second, "g", 0)] == [
            (1, b"frame 1"),
            (2, b"frame 2"),
            (3, b"frame 3"),
        ]
        assert (await second.state("g"), await second.text("g")) == ("closed", "abc")
        assert await second.reasoning("g") == "thinking more done"
        assert "an event arrived after its stream had moved on" in caplog.text


async def blocked_readers(client: redis.Redis) -> int:
    """How many connections to this client's Redis database are blocked in a read (CLIENT LIST)."""
    database = str(client.connection_pool.connection_kwargs.get("db", 0))
    clients = await client.client_list()
    return sum(1 for c in clients if c["db"] == database and "b" in c["flags"])


@pytest.mark.parametrize("protocol", [2, 3])
async def test_readers_in_another_process_share_one_blocking_read(
    request: pytest.FixtureRequest, protocol: int
) -> None:
    # Behind a load balancer most event streams reach another process than the question did: each of
    # them waiting in its own XREAD held a Redis connection for the whole answer. (XREAD answers pairs
    # in RESP2, a map in RESP3.)
    streams = [f"g{n}" for n in range(4)]
    async with two_processes(request, reader_protocol=protocol) as (writer_client, writer, reader):
        for stream_id in streams:
            writer.open(stream_id)
            writer.append(stream_id, event(1))
        await writer.flush()
        readers = [asyncio.create_task(collect(reader, s, 0)) for s in streams for _ in range(3)]
        await asyncio.sleep(0.3)
        assert await blocked_readers(writer_client) == 1
        before = await command_calls(writer_client, "xread")
        for seq in (2, 3, 4):
            for stream_id in streams:
                writer.append(stream_id, event(seq))
            await writer.flush()
            await asyncio.sleep(0.05)
        for stream_id in streams:
            writer.close(stream_id)
        async with asyncio.timeout(5):
            results = await asyncio.gather(*readers)
        assert results == [[event(n) for n in range(1, 5)]] * len(readers)
        # One XREAD answers every stream's readers: far fewer than one per reader per event.
        assert (await command_calls(writer_client, "xread"))["xread"] - before["xread"] < len(readers)
        await asyncio.sleep(0.4)  # nobody follows any more: the blocking read ends
        assert await blocked_readers(writer_client) == 0


async def test_a_reader_joining_behind_the_others_gets_everything_after_its_cursor(
    request: pytest.FixtureRequest,
) -> None:
    async with two_processes(request) as (_, writer, reader):
        writer.open("g")
        for seq in (1, 2, 3):
            writer.append("g", event(seq))
        await writer.flush()
        ahead = reader.follow("g", 2, idle_timeout=5)
        assert await anext(ahead) == [event(3)]
        waiting = asyncio.ensure_future(anext(ahead))
        await asyncio.sleep(0.05)
        # A second reader from the start (a reload), and one right after the last event: each gets
        # what follows its own cursor, at once, from the one blocking read.
        behind, level = reader.follow("g", 0, idle_timeout=5), reader.follow("g", 3, idle_timeout=5)
        assert await anext(behind) == [event(1), event(2), event(3)]
        level_waiting = asyncio.ensure_future(anext(level))
        await asyncio.sleep(0.05)
        writer.append("g", event(4))
        await writer.flush()
        async with asyncio.timeout(0.2):  # not the XREAD's block: the joins interrupted it
            assert await waiting == [event(4)]
            assert await anext(behind) == [event(4)]
            assert await level_waiting == [event(4)]
        writer.close("g")
        for stream in (ahead, behind, level):
            with pytest.raises(StopAsyncIteration):
                await anext(stream)


async def test_a_reader_in_another_process_gets_the_keepalive_tick_and_survives_a_lost_connection(
    request: pytest.FixtureRequest,
) -> None:
    async with two_processes(request) as (writer_client, writer, reader):
        writer.open("g")
        await writer.flush()
        stream = reader.follow("g", 0, idle_timeout=0.05)
        async with asyncio.timeout(1):
            assert await anext(stream) == ()
        # The blocking connection dies (a Redis restart, a proxy's timeout): the read goes on.
        await writer_client.client_kill_filter(_type="normal", skipme=True, _id=None)
        writer.append("g", event(1))
        writer.close("g")
        await writer.flush()
        async with asyncio.timeout(5):
            seen = [e async for batch in stream for e in batch]
        assert seen == [event(1)]
