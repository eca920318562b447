"""Who started an answer, by default: a random id in a cookie of its own, set on the first response that
lacks it. The id is unguessable and HttpOnly, so no other browser can present it; SameSite=Lax keeps
other sites' forms from posting with it (a stop)."""

from __future__ import annotations

import re
import secrets
from typing import Final

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from folyam.sessions import cookie_values

__all__ = ["OWNER_COOKIE", "OwnerCookieMiddleware", "owner_of"]

OWNER_COOKIE: Final = "folyam_owner"
_STATE_KEY: Final = "folyam_owner"
_OWNER: Final = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)


class OwnerCookieMiddleware:
    """Plain ASGI middleware (Litestar, Starlette, FastAPI): every HTTP request gets an owner id, from
    its `folyam_owner` cookie or a new one that the response sets."""

    def __init__(self, app: ASGIApp, *, secure: bool = False) -> None:
        self.app = app
        self._attributes = "Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        owner = state.get(_STATE_KEY)  # given already: by the host app's middleware, when mounted in it
        if owner is None:
            owner = next((value for value in cookie_values(scope, OWNER_COOKIE) if _OWNER.fullmatch(value)), None)
        if owner is not None:
            state[_STATE_KEY] = owner
            await self.app(scope, receive, send)
            return
        state[_STATE_KEY] = owner = secrets.token_urlsafe(32)
        set_cookie = f"{OWNER_COOKIE}={owner}; {self._attributes}"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message).add("Set-Cookie", set_cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def owner_of(scope: Scope) -> str:
    """The request's owner id, as `OwnerCookieMiddleware` gave it. Raises LookupError without it."""
    owner = scope.get("state", {}).get(_STATE_KEY)
    if not isinstance(owner, str):
        raise LookupError("no owner id on this request: add folyam.streaming.OwnerCookieMiddleware to the app")
    return owner
