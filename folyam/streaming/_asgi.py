"""Streamed answers in any other ASGI framework (Starlette, FastAPI, …): an ASGI app to mount, whose
lifespan the host runs in its own. It is the Litestar plugin's routes in an app of their own, so both
serve answers the same way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Final

from litestar import Litestar
from litestar.types import Receive, Scope, Send

from folyam.settings import Settings
from folyam.streaming._answers import AnswerStreams, EndedAnswer
from folyam.streaming._litestar import _STATE_KEY, AllowHook, FolyamStreams, owner_allowed

__all__ = ["StreamsApp"]

_NOT_STARTED: Final = "StreamsApp's lifespan is not running: give the host app `lifespan=streams.lifespan`"


class StreamsApp:
    """An ASGI app serving the answer routes; mount it at `prefix` (`app.mount("/folyam", streams)`), run
    `streams.lifespan` as (or in) the host's lifespan, and start answers with `streams.answers.start()`.
    The host app also needs `OwnerCookieMiddleware` unless its `allow` hook checks its own sessions."""

    def __init__(
        self,
        *,
        prefix: str = "/folyam",
        allow: AllowHook = owner_allowed,
        settings: Settings | None = None,
        record: Callable[[EndedAnswer], Awaitable[None]] | None = None,
        secure_cookies: bool = False,
    ) -> None:
        plugin = FolyamStreams(
            prefix="", allow=allow, settings=settings, record=record, secure_cookies=secure_cookies, mounted_at=prefix
        )
        self._app = Litestar(plugins=[plugin], openapi_config=None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    def lifespan(self, _host: object = None) -> AbstractAsyncContextManager[None]:
        """The app-wide objects, created on entering and closed on leaving (FastAPI and Starlette call it
        with the host app)."""
        return self._app.lifespan()

    @property
    def answers(self) -> AnswerStreams:
        """The running `AnswerStreams` (while the lifespan runs)."""
        streams = self._app.state.get(_STATE_KEY)
        if streams is None:
            raise RuntimeError(_NOT_STARTED)
        assert isinstance(streams, AnswerStreams)
        return streams
