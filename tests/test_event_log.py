from __future__ import annotations

import asyncio

import pytest

from folyam.event_log import Event, EventLog, MemoryEventLog, UnknownStream
from folyam.redis_coordination import redis_client
from folyam.redis_event_log import RedisEventLog


def event(seq: int) -> Event:
    return Event(seq, f"frame {seq}".encode())


async def collect(log: MemoryEventLog, stream_id: str, after: int) -> list[Event]:
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
            log.append(stream_id, event(1), "text")
            log.close(stream_id)
        log.forget("gone")
        await log.flush()
        assert (await log.state("kept"), await log.state("gone")) == ("closed", "missing")
    finally:
        await log.aclose()
        if client is not None:
            await client.aclose()
