from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

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
