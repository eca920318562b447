"""Choosing the backends from the settings: one process with an embedded database by default (SQLite,
the in-memory event log, local coordination), or PostgreSQL / SQLite plus Redis when several processes
serve one site."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from folyam.coordination import Coordination, LimitScope, LocalCoordination
from folyam.event_log import EventLog, MemoryEventLog
from folyam.redis_coordination import RedisCoordination, redis_client
from folyam.redis_event_log import RedisEventLog
from folyam.settings import Settings
from folyam.store.sql import SqlStore

__all__ = ["Backends", "make_backends"]

# An open event stream nobody writes to for this long lost its process (and nobody ended it): it expires.
_ABANDONED_AFTER: Final = 3600.0


@dataclass(frozen=True, slots=True)
class Backends:
    store: SqlStore
    event_log: EventLog
    coordination: Coordination

    async def aclose(self) -> None:
        await self.event_log.aclose()
        await self.coordination.aclose()
        await self.store.aclose()


def make_backends(settings: Settings) -> Backends:
    store = SqlStore(settings.store_url, timeout=settings.backend_timeout)
    limits: dict[LimitScope, int] = {
        "session": settings.max_running_per_session,
        "client": settings.max_running_per_client,
        "server": settings.max_running,
    }
    if settings.redis_url is None:
        return Backends(store, MemoryEventLog(), LocalCoordination(limits, settings.rate_limit_per_minute))
    client = redis_client(settings.redis_url, timeout=settings.backend_timeout)
    open_for = max(settings.generation_timeout, _ABANDONED_AFTER)
    return Backends(
        store,
        RedisEventLog(client, retention=settings.retention, open_for=open_for),
        RedisCoordination(client, limits, settings.rate_limit_per_minute),
    )
