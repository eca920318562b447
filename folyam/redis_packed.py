"""Redis commands packed by hiredis, for the few that carry many arguments often: the event log's write
batches and its followers' XREAD. redis-py's asyncio packer copies the command so far for each argument,
so a batch of a few hundred arguments cost it more to pack than Redis takes to run it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis.asyncio as redis
from redis.exceptions import NoScriptError

__all__ = ["PackedScript", "send"]

Argument = bytes | str | int | float


async def send(connection: Any, command: Sequence[Argument]) -> Any:
    """Send one command on a connection taken from the pool, and read its reply (an error reply raises
    `ResponseError`; the connection stays usable)."""
    await connection.send_packed_command(hiredis.pack_command(cast(Any, tuple(command))), check_health=False)
    return await connection.read_response()


class PackedScript:
    """A Lua script run by EVALSHA, and sent along (EVAL, which also caches it) when Redis does not
    have it (a restart, SCRIPT FLUSH); redis-py's `Script` loads it and sends EVALSHA again instead."""

    def __init__(self, client: redis.Redis, script: str) -> None:
        self._pool: Any = client.connection_pool
        self._script = script.encode()
        self._sha = hashlib.sha1(self._script).hexdigest().encode()

    async def __call__(self, keys: Sequence[Argument], args: Sequence[Argument]) -> Any:
        # (A call cancelled or cut off before its reply: redis-py closes the connection itself, so the
        # pool never hands out one with a reply still to come.)
        connection = await self._pool.get_connection()
        try:
            try:
                return await send(connection, (b"EVALSHA", self._sha, len(keys), *keys, *args))
            except NoScriptError:
                return await send(connection, (b"EVAL", self._script, len(keys), *keys, *args))
        finally:
            await self._pool.release(connection)
