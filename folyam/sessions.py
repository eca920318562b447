"""Browser sessions: a signed cookie carrying a random session id, and the CSRF token derived from it.

Everything a session creates (conversations, generations) is owned by its id; the CSRF token is an
HMAC of the id, so it needs no storage and works across processes that share the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from http.cookies import SimpleCookie
from typing import Final

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSRF_FIELD", "CSRF_HEADER", "SESSION_COOKIE", "SessionMiddleware", "SessionSigner", "session_id_of"]

SESSION_COOKIE: Final = "folyam_session"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
_STATE_KEY: Final = "folyam_session_id"


class SessionSigner:
    def __init__(self, secret: str | bytes) -> None:
        self._key = secret.encode() if isinstance(secret, str) else secret

    def new_session_id(self) -> str:
        return secrets.token_urlsafe(18)

    def cookie_value(self, session_id: str) -> str:
        return f"{session_id}.{self._mac('session', session_id)}"

    def session_id(self, cookie_value: str | None) -> str | None:
        """The session id of a cookie value, or None when it is missing or not signed by us."""
        if not cookie_value or "." not in cookie_value:
            return None
        session_id, _, mac = cookie_value.rpartition(".")
        return session_id if hmac.compare_digest(mac, self._mac("session", session_id)) else None

    def csrf_token(self, session_id: str) -> str:
        return self._mac("csrf", session_id)

    def csrf_ok(self, session_id: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session_id))

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:43]


def _is_static(scope: Scope) -> bool:
    return str(scope["path"]).startswith("/static/")


class SessionMiddleware(ASGIMiddleware):
    """Gives every request a session id (from its cookie, or a new one that the response sets)."""

    scopes = (ScopeType.HTTP,)
    # Not `exclude_path_pattern`: Litestar 2.25 warns (DeprecationWarning) on every static request
    # with it, since the static router's handler path does not match; the tests make that a 500.
    should_bypass_for_scope = staticmethod(_is_static)

    def __init__(self, signer: SessionSigner, *, secure_cookie: bool = False) -> None:
        self._signer = signer
        self._attributes = "Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure_cookie else "")

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        session_id = self._signer.session_id(_cookie(scope, SESSION_COOKIE))
        if session_id is not None:
            scope.setdefault("state", {})[_STATE_KEY] = session_id
            await next_app(scope, receive, send)
            return
        session_id = self._signer.new_session_id()
        scope.setdefault("state", {})[_STATE_KEY] = session_id
        set_cookie = f"{SESSION_COOKIE}={self._signer.cookie_value(session_id)}; {self._attributes}"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message).add("Set-Cookie", set_cookie)
            await send(message)

        await next_app(scope, receive, send_with_cookie)


def session_id_of(scope: Scope) -> str:
    return str(scope["state"][_STATE_KEY])


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope["headers"]:
        if key == b"cookie":
            morsel = SimpleCookie(value.decode("latin-1")).get(name)
            if morsel is not None:
                return morsel.value
    return None
