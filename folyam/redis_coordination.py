"""Coordination through Redis, so that any process serves any request: running-answer counts and rate
limits as sorted sets updated by Lua scripts (atomic, on Redis's clock), leases as keys that expire, and
stop requests on a pub/sub channel. A process that dies stops renewing its leases and slots: they lapse
within the lease time."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final, TypeVar

import redis.asyncio as redis
from redis import DriverInfo
from redis.exceptions import RedisError

from folyam.coordination import CoordinationUnavailable, LimitScope, StopHandler
from folyam.redis_packed import PackedScript

__all__ = ["LEASE_SECONDS", "RedisCoordination", "redis_client"]

LEASE_SECONDS: Final = 6.0
_STOPS: Final = "folyam:stop"
T = TypeVar("T")
logger = logging.getLogger(__name__)

# KEYS: one sorted set per scope, then the lease key. ARGV: lease ms, member, then each scope's limit. Drops
# lapsed members, refuses (returning the scope's index) when a set is full, else adds the member to every
# set and takes the lease (held from then on: it says the answer's process lives).
_TAKE_SLOT: Final = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i = 1, #KEYS - 1 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ms)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[2 + i]) then return i end
end
for i = 1, #KEYS - 1 do
  redis.call('ZADD', KEYS[i], ms + tonumber(ARGV[1]), ARGV[2])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[1]) * 2)
end
redis.call('SET', KEYS[#KEYS], '1', 'PX', ARGV[1])
return 0
"""
# KEYS[1]: the client's sorted set. ARGV: window ms, limit. Returns -1 when allowed, else ms to wait.
_RATE_LIMIT: Final = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - ms
end
redis.call('ZADD', KEYS[1], ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return -1
"""
# KEYS: the slots' sorted sets, then the lease key. ARGV: the member. Gives the slots back, drops the lease.
_GIVE_BACK: Final = """
for i = 1, #KEYS - 1 do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('DEL', KEYS[#KEYS])
return 0
"""
# KEYS: each answer's slots' sorted sets, then its lease key. ARGV: lease ms, then each answer's member
# and number of keys. Renews the slots that exist, and the leases.
_HOLD: Final = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local lease = tonumber(ARGV[1])
local k = 1
for i = 2, #ARGV, 2 do
  local member, n = ARGV[i], tonumber(ARGV[i + 1])
  for j = k, k + n - 2 do
    redis.call('ZADD', KEYS[j], 'XX', ms + lease, member)
    redis.call('PEXPIRE', KEYS[j], lease * 2)
  end
  redis.call('SET', KEYS[k + n - 1], '1', 'PX', lease)
  k = k + n
end
return 0
"""
_HOLD_PER_CALL: Final = 500  # answers renewed by one call (a call holds Redis meanwhile)


def redis_client(url: str, *, timeout: float = 5.0) -> redis.Redis:
    return redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=15,
        max_connections=10_000,
        # Made once for all of the pool's connections: left out, each new connection looks up redis-py's
        # version in its package metadata (a file read and an email parse), and a burst of questions
        # makes dozens. (It names Folyam in CLIENT LIST too, from Redis 7.2.)
        driver_info=_driver_info(),
    )


def _driver_info() -> DriverInfo:
    try:
        own = version("folyam")
    except PackageNotFoundError:  # a checkout that was not installed
        own = "0"
    return DriverInfo().add_upstream_driver("folyam", own)


def _slot_key(scope: LimitScope, key: str) -> str:
    return f"folyam:running:{scope}:{key}"


def _lease_key(generation_id: str) -> str:
    return f"folyam:lease:{generation_id}"


class RedisCoordination:
    def __init__(self, client: redis.Redis, limits: Mapping[LimitScope, int], rate_limit_per_minute: int) -> None:
        self._redis: Any = client  # (redis-py's result types are wide unions)
        self._limits = dict(limits)
        self._rate_limit = rate_limit_per_minute
        # Every question and every answer's end calls one of the first three (and `hold` runs every few
        # seconds): packed by hiredis on a pooled connection (`folyam.redis_packed`), a call costs a third
        # less CPU than redis-py's Script and half what a pipeline of its commands did.
        self._take = PackedScript(client, _TAKE_SLOT)
        self._rate = PackedScript(client, _RATE_LIMIT)
        self._give_back = PackedScript(client, _GIVE_BACK)
        self._hold = PackedScript(client, _HOLD)
        self._lease_ms = int(LEASE_SECONDS * 1000)

    async def take_slot(self, keys: Mapping[LimitScope, str], generation_id: str) -> LimitScope | None:
        scopes = list(keys)
        refused = await self._call(
            self._take,
            keys=[*(_slot_key(scope, keys[scope]) for scope in scopes), _lease_key(generation_id)],
            args=[self._lease_ms, generation_id, *(self._limits[scope] for scope in scopes)],
        )
        return scopes[int(refused) - 1] if refused else None

    async def give_back_slot(self, keys: Mapping[LimitScope, str], generation_id: str) -> None:
        held = [*(_slot_key(scope, key) for scope, key in keys.items()), _lease_key(generation_id)]
        await self._call(self._give_back, keys=held, args=[generation_id])

    async def rate_limit(self, client: str) -> float | None:
        wait = await self._call(
            self._rate, keys=[f"folyam:rate:{client}"], args=[60_000, self._rate_limit, secrets.token_hex(8)]
        )
        return None if int(wait) < 0 else int(wait) / 1000

    async def hold(self, running: Mapping[str, Mapping[LimitScope, str]]) -> None:
        # One call for many answers: a pipeline of one script call per answer cost each answer a packing
        # and a reply, every two seconds. (The caller's answers as they were when it called: one given
        # back meanwhile keeps its lease until the lease time ends, as it would with the pipeline.)
        answers = list(running.items())
        for start in range(0, len(answers), _HOLD_PER_CALL):
            keys: list[str] = []
            args: list[str | int] = [self._lease_ms]
            for generation_id, scopes in answers[start : start + _HOLD_PER_CALL]:
                keys += (*(_slot_key(scope, key) for scope, key in scopes.items()), _lease_key(generation_id))
                args += (generation_id, len(scopes) + 1)
            await self._call(self._hold, keys=keys, args=args)

    async def alive(self, generation_id: str) -> bool:
        return bool(await self._call(self._redis.exists, _lease_key(generation_id)))

    async def claim(self, generation_id: str) -> bool:
        return bool(await self._call(self._redis.set, f"folyam:claim:{generation_id}", "1", nx=True, px=60_000))

    async def request_stop(self, generation_id: str) -> None:
        await self._call(self._redis.publish, _STOPS, generation_id)

    async def listen_for_stops(self, handler: StopHandler) -> None:
        """Until cancelled; a lost connection is retried (stop requests sent meanwhile are lost: the
        page's Stop button may be pressed again)."""
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(_STOPS)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            result = handler(message["data"].decode())
                            if result is not None:
                                await result
            except (RedisError, OSError) as exc:
                logger.warning("listening for stop requests failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)

    async def prune(self, now: float) -> None:
        return None  # sorted sets prune themselves, keys expire

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _call(self, command: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        try:
            return await command(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise CoordinationUnavailable(f"Redis failed: {type(exc).__name__}") from exc
