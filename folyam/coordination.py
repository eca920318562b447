"""Coordination between the processes that serve one site: how many answers run (per session, per client
address, in all), how many questions a client asks per minute, who holds a running answer (its lease),
and stop requests for an answer another process runs.

`Coordination` is the interface. `LocalCoordination` is the one-process default, all in memory;
`folyam.redis_coordination.RedisCoordination` shares the same state between processes through Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal, Protocol

from folyam.limits import RateLimiter, Slots

__all__ = ["Coordination", "CoordinationUnavailable", "LimitScope", "LocalCoordination", "StopHandler"]

LimitScope = Literal["session", "client", "server"]
StopHandler = Callable[[str], Awaitable[None] | None]


class CoordinationUnavailable(Exception):
    """Raised when the shared state (Redis) cannot be reached."""


class Coordination(Protocol):
    async def take_slot(self, keys: Mapping[LimitScope, str], generation_id: str) -> LimitScope | None:
        """Count a new running answer under each scope's key, unless one is at its limit: then nothing is
        counted and that scope is returned."""

    async def give_back_slot(self, keys: Mapping[LimitScope, str], generation_id: str) -> None: ...

    async def rate_limit(self, client: str) -> float | None:
        """Record a question from `client`; None when allowed, else the seconds until one would be."""

    async def hold(self, running: Mapping[str, Mapping[LimitScope, str]]) -> None:
        """Renew the leases (and slots) of the answers this process runs (by id, with their slots' keys);
        called every few seconds."""

    async def alive(self, generation_id: str) -> bool:
        """Whether some process still holds the answer's lease."""

    async def claim(self, generation_id: str) -> bool:
        """Become the one that ends an answer whose process died (only one caller gets True)."""

    async def request_stop(self, generation_id: str) -> None:
        """Ask whichever process runs the answer to stop it."""

    async def listen_for_stops(self, handler: StopHandler) -> None:
        """Call `handler(generation_id)` for every stop request, until cancelled."""

    async def prune(self, now: float) -> None: ...

    async def aclose(self) -> None: ...


class LocalCoordination:
    """One process: the counts live here, and an answer's lease is held while it runs here (one recorded
    as running that does not is a leftover of a crash)."""

    def __init__(self, limits: Mapping[LimitScope, int], rate_limit_per_minute: int) -> None:
        self._slots = {scope: Slots(limit) for scope, limit in limits.items()}
        self._rate = RateLimiter(rate_limit_per_minute)
        self._stops: asyncio.Queue[str] = asyncio.Queue()
        self._held: set[str] = set()
        self._claimed: set[str] = set()

    async def take_slot(self, keys: Mapping[LimitScope, str], generation_id: str) -> LimitScope | None:
        for scope, key in keys.items():
            if not self._slots[scope].available(key):
                return scope
        for scope, key in keys.items():
            self._slots[scope].take(key)
        self._held.add(generation_id)
        return None

    async def give_back_slot(self, keys: Mapping[LimitScope, str], generation_id: str) -> None:
        for scope, key in keys.items():
            self._slots[scope].give_back(key)
        self._held.discard(generation_id)

    async def rate_limit(self, client: str) -> float | None:
        return self._rate.check(client, asyncio.get_running_loop().time())

    async def hold(self, running: Mapping[str, Mapping[LimitScope, str]]) -> None:
        return None

    async def alive(self, generation_id: str) -> bool:
        return generation_id in self._held

    async def claim(self, generation_id: str) -> bool:
        if generation_id in self._claimed:
            return False
        self._claimed.add(generation_id)
        return True

    async def request_stop(self, generation_id: str) -> None:
        self._stops.put_nowait(generation_id)

    async def listen_for_stops(self, handler: StopHandler) -> None:
        while True:
            result = handler(await self._stops.get())
            if result is not None:
                await result

    async def prune(self, now: float) -> None:
        self._rate.prune(now)

    async def aclose(self) -> None:
        return None
