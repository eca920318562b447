"""Browser sessions: a signed cookie carrying a random session id, and the CSRF token derived from it.

Everything a session creates (conversations, generations) is owned by its id; the CSRF token is an
HMAC of the id, so it needs no storage and works across processes that share the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "SessionMiddleware",
    "SessionSigner",
    "cookie_values",
    "is_new_session",
    "session_id_of",
]

SESSION_COOKIE: Final = "folyam_session"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
_STATE_KEY: Final = "folyam_session_id"
_NEW_KEY: Final = "folyam_session_new"
# What cookie_value() makes: a token_urlsafe id, a dot, 43 hex digits.
_SESSION_VALUE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}\.[0-9a-f]{43}")


class SessionSigner:
    def __init__(self, secret: str | bytes) -> None:
        self._key = secret.encode() if isinstance(secret, str) else secret

    def new_session_id(self) -> str:
        return secrets.token_urlsafe(18)

    def cookie_value(self, session_id: str) -> str:
        return f"{session_id}.{self._mac('session', session_id)}"

    def session_id(self, cookie_value: str | None) -> str | None:
        """The session id of a cookie value, or None when it is missing or not signed by us."""
        if not cookie_value or not _SESSION_VALUE.fullmatch(cookie_value):
            return None
        session_id, _, mac = cookie_value.rpartition(".")
        return session_id if hmac.compare_digest(mac, self._mac("session", session_id)) else None

    def csrf_token(self, session_id: str) -> str:
        return self._mac("csrf", session_id)

    def csrf_ok(self, session_id: str, token: str | None) -> bool:
        # Bytes: compare_digest refuses str with non-ASCII characters, and a token is client input.
        return bool(token) and hmac.compare_digest(str(token).encode(), self.csrf_token(session_id).encode())

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
        session_id = next(filter(None, map(self._signer.session_id, cookie_values(scope, SESSION_COOKIE))), None)
        state = scope.setdefault("state", {})
        if session_id is not None:
            state[_STATE_KEY], state[_NEW_KEY] = session_id, False
            await next_app(scope, receive, send)
            return
        session_id = self._signer.new_session_id()
        state[_STATE_KEY], state[_NEW_KEY] = session_id, True
        set_cookie = f"{SESSION_COOKIE}={self._signer.cookie_value(session_id)}; {self._attributes}"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message).add("Set-Cookie", set_cookie)
            await send(message)

        await next_app(scope, receive, send_with_cookie)


def session_id_of(scope: Scope) -> str:
    return str(scope["state"][_STATE_KEY])


def is_new_session(scope: Scope) -> bool:
    """True when the request came without a valid session cookie: it cannot carry a valid CSRF token."""
    return bool(scope["state"][_NEW_KEY])


def cookie_values(scope: Scope, name: str) -> list[str]:
    """Every value the request's cookies give `name`, in order. Not `http.cookies`: its parser is
    quadratic on some inputs (CVE-2024-7592) and gives up on a whole header for one malformed pair
    (another app on the same host may set `a@b=1`). This reads pairs split by ";" and ignores the rest:
    linear, and our own cookie's value needs no unquoting."""
    wanted = name.encode("latin-1")
    values = []
    for key, header in scope["headers"]:
        if key != b"cookie":
            continue
        for pair in header.split(b";"):
            pair_name, equals, value = pair.partition(b"=")
            if equals and pair_name.strip() == wanted:
                values.append(value.strip().strip(b'"').decode("latin-1"))
    return values
