"""Security headers that every response carries, static files and event streams included, and the
no-store that every per-session response carries."""

from __future__ import annotations

from typing import Final

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "add_security_headers"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

SECURITY_HEADERS: Final = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


async def add_security_headers(message: Message, scope: Scope) -> None:
    """A `before_send` hook: it sees every response start, unlike per-route response headers. Everything
    but the static files belongs to one browser session, so no cache (a proxy's or the browser's) keeps it."""
    if message["type"] == "http.response.start":
        headers = MutableScopeHeaders.from_message(message)
        for name, value in SECURITY_HEADERS:
            headers[name] = value
        if not str(scope["path"]).startswith("/static/"):
            headers["Cache-Control"] = "no-store"
