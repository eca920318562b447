from __future__ import annotations

import asyncio
import contextlib

import pytest
from redis.exceptions import ResponseError

from folyam.redis_coordination import redis_client
from folyam.redis_event_log import RedisEventLog
from folyam.redis_packed import PackedScript
from tests.test_event_log import command_calls, event

ECHO = "return {ARGV[1], redis.call('INCR', KEYS[1])}"


async def test_a_script_redis_lost_goes_along_once_and_the_event_log_writes_on(
    request: pytest.FixtureRequest,
) -> None:
    # A Redis restart (or SCRIPT FLUSH) empties its script cache: the write batch's EVALSHA is refused
    # with NOSCRIPT and the batch goes again with its script (EVAL), which Redis keeps for the next one.
    client = redis_client(request.getfixturevalue("redis").fresh_url())
    log = RedisEventLog(client, retention=60, open_for=60)
    try:
        log.open("g")
        log.append("g", event(1), "a")
        await log.flush()
        await client.script_flush()
        before = await command_calls(client, "evalsha", "eval")
        log.append("g", event(2), "b")
        await log.flush()
        log.append("g", event(3), "c")
        await log.flush()
        after = await command_calls(client, "evalsha", "eval")
        assert (after["evalsha"] - before["evalsha"], after["eval"] - before["eval"]) == (2, 1)
        assert await client.get("folyam:text:g") == b"abc"
        assert await client.xlen("folyam:events:g") == 4  # opened, three events
    finally:
        await log.aclose()
        await client.aclose()


async def test_a_call_cancelled_before_its_reply_does_not_leave_the_reply_to_the_next(
    request: pytest.FixtureRequest,
) -> None:
    client = redis_client(request.getfixturevalue("redis").fresh_url())
    script = PackedScript(client, ECHO)
    try:
        assert await script(["n"], ["first"]) == [b"first", 1]
        # Redis holds writes (a script may write) for a while: the call is cancelled while its reply is
        # still to come. Its connection must not go back to the pool as it is, or the next call on it
        # would read this reply as its own.
        await client.client_pause(5000, all=False)
        try:
            late = asyncio.create_task(script(["n"], ["cancelled"]))
            await asyncio.sleep(0.1)
            assert not late.done()  # waiting for its reply
            late.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await late
            assert late.cancelled()
        finally:
            await client.client_unpause()  # (the server is the whole test session's)
        assert (await script(["n"], ["next"]))[0] == b"next"
        # An error reply is read whole: the connection stays and the next call gets its own reply.
        with pytest.raises(ResponseError, match="Wrong number of args"):
            await PackedScript(client, "return redis.call('GET')")([], [])
        assert (await script(["n"], ["after the error"]))[0] == b"after the error"
    finally:
        await client.aclose()
