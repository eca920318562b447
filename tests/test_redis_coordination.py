from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import redis.utils

from folyam.coordination import LimitScope
from folyam.redis_coordination import RedisCoordination, redis_client


@pytest.fixture
async def coordination(request: pytest.FixtureRequest) -> AsyncIterator[RedisCoordination]:
    client = redis_client(request.getfixturevalue("redis").fresh_url())
    coordination = RedisCoordination(client, {"session": 2, "server": 3}, rate_limit_per_minute=10)
    try:
        yield coordination
    finally:
        await coordination.aclose()


async def test_a_slot_comes_with_its_lease_and_a_full_scope_refuses_without_one(
    coordination: RedisCoordination,
) -> None:
    def scopes(session: str) -> Mapping[LimitScope, str]:
        return {"session": session, "server": "all"}

    keys = scopes("s1")
    assert await coordination.take_slot(keys, "g1") is None
    assert await coordination.take_slot(keys, "g2") is None
    # The answer's process lives as long as its lease does (taken with the slot, in the same call).
    assert (await coordination.alive("g1"), await coordination.alive("g2")) == (True, True)
    assert await coordination.take_slot(keys, "g3") == "session"
    assert await coordination.alive("g3") is False
    # Another session still has room on the server, up to the server's own limit.
    assert await coordination.take_slot(scopes("s2"), "g4") is None
    assert await coordination.take_slot(scopes("s3"), "g5") == "server"
    # Given back: its lease goes, and so does its place in each scope (the session's and the server's).
    await coordination.give_back_slot(keys, "g1")
    assert await coordination.alive("g1") is False
    assert await coordination.take_slot(keys, "g3") is None
    assert await coordination.take_slot(scopes("s3"), "g5") == "server"
    await coordination.give_back_slot(keys, "g3")
    assert await coordination.take_slot(scopes("s3"), "g5") is None


async def test_a_burst_of_new_connections_reads_no_package_metadata(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py looks its own version up in its package metadata for every new connection unless it is
    # given one DriverInfo for the pool: a burst of questions opens dozens of connections at once.
    lookups = 0
    real = redis.utils.get_lib_version

    def counted() -> str:
        nonlocal lookups
        lookups += 1
        return real()

    monkeypatch.setattr(redis.utils, "get_lib_version", counted)
    client = redis_client(request.getfixturevalue("redis").fresh_url())
    try:
        await asyncio.gather(*(client.blpop([f"nothing:{n}"], timeout=0.05) for n in range(20)))
        pool = client.connection_pool
        assert len(pool._available_connections) >= 20  # type: ignore[attr-defined]
        assert lookups == 1  # the pool's one DriverInfo, made with the client
    finally:
        await client.aclose()


async def test_the_rate_limit_counts_each_client_apart_on_redis_clock(coordination: RedisCoordination) -> None:
    assert [await coordination.rate_limit("c1") for _ in range(10)] == [None] * 10
    wait = await coordination.rate_limit("c1")
    # The eleventh question within the minute waits until the first leaves the window.
    assert wait is not None and 50 < wait <= 60
    assert await coordination.rate_limit("c2") is None


async def test_holding_renews_every_running_answer_s_lease_and_slots_in_one_call(
    request: pytest.FixtureRequest,
) -> None:
    # A process renews what its answers hold every few seconds; what it stops renewing lapses (its
    # process died), and a slot already given back is not taken again by a renewal. Answers hold different
    # scopes (a host's own may count fewer), so each one's keys in the call differ in number.
    client = redis_client(request.getfixturevalue("redis").fresh_url())
    coordination = RedisCoordination(client, {"session": 5, "client": 5, "server": 5}, rate_limit_per_minute=10)
    try:
        answers: dict[str, Mapping[LimitScope, str]] = {
            "g0": {"session": "s0", "server": "all"},
            "g1": {"session": "s1", "client": "c1", "server": "all"},
            "g2": {"server": "all"},
            "g3": {"session": "s1", "server": "all"},
        }
        for generation_id, keys in answers.items():
            assert await coordination.take_slot(keys, generation_id) is None
        await coordination.give_back_slot(answers["g3"], "g3")
        running = {generation_id: answers[generation_id] for generation_id in ("g0", "g1", "g2")}
        for key in ("folyam:lease:g0", "folyam:lease:g1", "folyam:lease:g2", "folyam:running:server:all"):
            await client.pexpire(key, 50)
        for key in ("folyam:running:session:s1", "folyam:running:client:c1"):
            await client.zadd(key, {"g1": 1})  # (its place there lapsed long ago, unless renewed)
        calls = (await client.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
        await coordination.hold(running)
        assert (await client.info("commandstats"))["cmdstat_evalsha"]["calls"] == calls + 1
        await asyncio.sleep(0.2)
        # Every lease is there again for the lease time, and every slot that was held still is.
        assert [await coordination.alive(f"g{n}") for n in range(4)] == [True, True, True, False]
        assert 5_000 < await client.pttl("folyam:lease:g2") <= 6_000
        assert await client.zrange("folyam:running:server:all", 0, -1) == [b"g0", b"g1", b"g2"]
        renewed_until = await _now_ms(client) + 6_000
        for key in ("folyam:running:session:s1", "folyam:running:client:c1"):
            [(member, score)] = await client.zrange(key, 0, -1, withscores=True)
            assert member == b"g1" and renewed_until - 1_000 < score <= renewed_until
        # Not renewed, a lease lapses.
        await client.pexpire("folyam:lease:g2", 50)
        await coordination.hold({generation_id: answers[generation_id] for generation_id in ("g0", "g1")})
        await asyncio.sleep(0.2)
        assert [await coordination.alive(f"g{n}") for n in range(3)] == [True, True, False]
    finally:
        await coordination.aclose()


async def _now_ms(client: Any) -> float:
    seconds, microseconds = await client.time()
    return seconds * 1000 + microseconds / 1000
