"""Streamed answers in a Litestar app: a plugin that mounts their routes (events, stop, Folyam's static
files) under a prefix, gives each request an owner id, and keeps one `AnswerStreams` per app, created
and closed in the app's lifespan."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

from litestar import Litestar, Request, Router, get, post
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath, FromQuery
from litestar.plugins import InitPluginProtocol
from litestar.response import Stream
from litestar.static_files import create_static_files_router

from folyam.assets import StaticAssets, VersionedCaching
from folyam.settings import Settings
from folyam.sse import event_stream
from folyam.streaming._answers import STATIC_DIR, AnswerStreams, EndedAnswer
from folyam.streaming._events import event_cursor
from folyam.streaming._owner import OwnerCookieMiddleware, owner_of

__all__ = ["AllowHook", "FolyamStreams", "answer_streams", "owner_allowed"]

AnyRequest = Request[Any, Any, Any]
# The host's check, given the request and an answer's id: may this request read (or stop) that answer?
AllowHook = Callable[[AnyRequest, str], bool | Awaitable[bool]]

_STATE_KEY: Final = "folyam_answer_streams"


def answer_streams(request: AnyRequest) -> AnswerStreams:
    """The app's `AnswerStreams` (for an allow hook; handlers get it as the `streams` dependency)."""
    streams: AnswerStreams = request.app.state[_STATE_KEY]
    return streams


def owner_allowed(request: AnyRequest, answer_id: str) -> bool:
    """The default check: only the browser (owner cookie) that started an answer may read or stop it."""
    return answer_streams(request).owned_by(answer_id, owner_of(request.scope))


def _provide_streams(state: State) -> AnswerStreams:
    streams: AnswerStreams = state[_STATE_KEY]
    return streams


class FolyamStreams(InitPluginProtocol):
    """A Litestar plugin: `Litestar([...], plugins=[FolyamStreams()])` mounts the answer routes under
    `prefix`, and handlers start answers through their `streams: NamedDependency[AnswerStreams]` dependency."""

    def __init__(
        self,
        *,
        prefix: str = "/folyam",
        allow: AllowHook = owner_allowed,
        settings: Settings | None = None,
        record: Callable[[EndedAnswer], Awaitable[None]] | None = None,
        secure_cookies: bool = False,
        mounted_at: str | None = None,
    ) -> None:
        # `mounted_at`: the URL prefix the browser sees when this app is itself mounted under one (the
        # ASGI adapter mounts it there and serves its routes at the root).
        self._prefix = prefix.rstrip("/")
        self._url_prefix = (self._prefix if mounted_at is None else mounted_at).rstrip("/")
        self._allow = allow
        self._settings = settings
        self._record = record
        self._secure_cookies = secure_cookies
        # Its static files, each linked (by `head()`) and kept by browsers at its versioned URL.
        self._assets = StaticAssets(STATIC_DIR, f"{self._url_prefix}/static")

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.append(self._router())
        app_config.middleware.append(DefineMiddleware(OwnerCookieMiddleware, secure=self._secure_cookies))
        app_config.lifespan.append(self._lifespan)
        app_config.dependencies["streams"] = Provide(_provide_streams, sync_to_thread=False)
        app_config.signature_namespace["AnswerStreams"] = AnswerStreams
        return app_config

    @asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        streams = AnswerStreams(
            prefix=self._url_prefix, settings=self._settings, record=self._record, assets=self._assets
        )
        app.state[_STATE_KEY] = streams
        try:
            yield
        finally:
            await streams.aclose()
            del app.state[_STATE_KEY]

    def _router(self) -> Router:
        allow = self._allow

        async def allowed(request: AnyRequest, answer_id: str) -> AnswerStreams:
            # Unknown and not allowed look the same: an answer's existence is no one else's business.
            verdict = allow(request, answer_id)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict is not True:
                raise NotFoundException()
            return answer_streams(request)

        @get("/answers/{answer_id:str}/events", name="folyam_streams:events")
        async def events(answer_id: FromPath[str], request: AnyRequest, after: FromQuery[int | None] = None) -> Stream:
            streams = await allowed(request, answer_id)
            frames = streams.events(answer_id, event_cursor(request.headers.get("last-event-id"), after))
            if frames is None:
                raise NotFoundException()
            return event_stream(frames)

        @post("/answers/{answer_id:str}/stop", name="folyam_streams:stop", status_code=204)
        async def stop(answer_id: FromPath[str], request: AnyRequest) -> None:
            streams = await allowed(request, answer_id)
            if not streams.stop(answer_id):
                raise NotFoundException()

        static = create_static_files_router(
            path="/static",
            directories=[STATIC_DIR],
            name="folyam_streams:static",
            middleware=[DefineMiddleware(VersionedCaching, assets=self._assets)],
        )
        return Router(path=self._prefix or "/", route_handlers=[events, stop, static])
