"""Response headers that every page and fragment carries."""

from __future__ import annotations

from typing import Final

from litestar.datastructures import ResponseHeader

__all__ = ["CONTENT_SECURITY_POLICY", "security_headers"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def security_headers() -> list[ResponseHeader]:
    return [
        ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY),
        ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
        ResponseHeader(name="Referrer-Policy", value="no-referrer"),
    ]
