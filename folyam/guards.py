"""Checks every handler that changes something makes before it acts: ids in paths, the CSRF token
(before any body is read), and the bounded form reader."""

from __future__ import annotations

import re
import secrets
from typing import Any, Final

from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import NotFoundException

from folyam.errors import UserFacingError
from folyam.forms import read_form
from folyam.sessions import CSRF_FIELD, CSRF_HEADER, SessionSigner, is_new_session, session_id_of
from folyam.settings import Settings

__all__ = ["FORM_OVERHEAD", "ID", "check_id", "new_id", "page_expired", "read_bounded_form", "require_csrf"]

ID: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")
# Besides the texts: request_id, csrf_token, model, each well under this.
FORM_OVERHEAD: Final = 2_048
_MAX_FIELDS: Final = 8
AnyRequest = Request[Any, Any, State]


def new_id() -> str:
    return secrets.token_urlsafe(16)


def check_id(value: str) -> str:
    if not ID.fullmatch(value):
        raise NotFoundException()
    return value


def page_expired() -> UserFacingError:
    return UserFacingError(403, "Page expired", "Reload the page and try again.")


async def require_csrf(
    request: AnyRequest, state: State, *, max_bytes: int, too_large: UserFacingError | None = None
) -> tuple[str, dict[str, str] | None]:
    """The session id, once the request proved it comes from our page; and the form, if it had to be
    read for the token. Checked before any body is read: without a session cookie no token can be
    right, and htmx sends the token as a header."""
    session_id = session_id_of(request.scope)
    if is_new_session(request.scope):
        raise page_expired()
    form = None
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        form = await read_bounded_form(request, state, max_bytes, too_large)
        token = form.get(CSRF_FIELD)
    signer: SessionSigner = state.signer
    if not signer.csrf_ok(session_id, token):
        raise page_expired()
    return session_id, form


async def read_bounded_form(
    request: AnyRequest, state: State, max_bytes: int, too_large: UserFacingError | None = None
) -> dict[str, str]:
    settings: Settings = state.settings
    try:
        return await read_form(request, max_bytes=max_bytes, max_fields=_MAX_FIELDS, timeout=settings.body_timeout)
    except UserFacingError as exc:
        if exc.status_code == 413 and too_large is not None:
            raise too_large from None
        raise
