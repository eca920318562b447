"""Security headers that every response carries, static files and event streams included, the no-store
that every per-session response carries, and the static files' caching."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from folyam.assets import StaticAssets

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "security_headers"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

SECURITY_HEADERS: Final = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


def security_headers(assets: StaticAssets) -> Callable[[Message, Scope], Awaitable[None]]:
    """A `before_send` hook: it sees every response start, unlike per-route response headers. Everything
    but the static files belongs to one browser session, so no cache (a proxy's or the browser's) keeps
    it; a static file is kept as `assets` says (for a year at its versioned URL)."""

    async def add_security_headers(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start":
            headers = MutableScopeHeaders.from_message(message)
            for name, value in SECURITY_HEADERS:
                headers[name] = value
            cache = assets.cache_control(str(scope["path"]), scope["query_string"], message["status"])
            headers["Cache-Control"] = cache or "no-store"

    return add_security_headers
