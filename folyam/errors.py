"""Errors a person sees: one exception type carrying a title and a plain sentence, and the handler that
turns every HTTP error into the one error fragment (or a small page without htmx)."""

from __future__ import annotations

import logging
from typing import Any

import jinja2
from litestar import MediaType, Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from markupsafe import Markup

from folyam.components import ErrorNotice, Partial, render_component
from folyam.components._ids import PAGE_IDS

__all__ = ["UserFacingError", "conversation_busy", "internal_error", "unavailable", "user_facing_error"]

logger = logging.getLogger(__name__)

_INTERNAL = ErrorNotice("Something went wrong", "The server could not answer this request.")


class UserFacingError(HTTPException):
    """An error the person sees as the error fragment by the composer (or as a small page)."""

    def __init__(self, status_code: int, title: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.title = title
        self.message = message


def user_facing_error(request: Request[Any, Any, State], exc: HTTPException) -> Response[str]:
    """Every HTTP error becomes the one error fragment: for htmx, swapped into the composer's error slot;
    otherwise inside a page of its own."""
    if isinstance(exc, UserFacingError):
        notice = ErrorNotice(exc.title, exc.message)
    elif exc.status_code == 404:
        notice = ErrorNotice("Not found", "There is nothing here, or it is not yours.")
    elif exc.status_code >= 500:
        notice = _INTERNAL
    else:
        notice = ErrorNotice("Request refused", str(exc.detail))
    return _error_response(request, notice, exc.status_code, exc.headers or None)


def internal_error(request: Request[Any, Any, State], exc: Exception) -> Response[str]:
    """Anything else is a fault of ours: logged with its traceback (by Litestar, before this runs), and
    shown as a plain sentence that gives nothing away."""
    return _error_response(request, _INTERNAL, 500, None)


def unavailable(request: Request[Any, Any, State], exc: Exception) -> Response[str]:
    """The database or Redis cannot be reached: a clear 503, and it works again once they are back. One
    log line each (not Litestar's traceback: under load a slow database fails many requests at once)."""
    logger.warning("%s %s: 503, %s", request.method, request.url.path, exc)
    notice = ErrorNotice("Service unavailable", "The server cannot reach its storage just now; try again in a moment.")
    return _error_response(request, notice, 503, {"Retry-After": "5"})


def conversation_busy(request: Request[Any, Any, State], exc: Exception) -> Response[str]:
    """A question (or a regenerate, an edit) while the conversation still answers: one at a time."""
    notice = ErrorNotice("Still answering", "Wait for the answer to finish, or stop it, then ask again.")
    return _error_response(request, notice, 409, None)


def _error_response(
    request: Request[Any, Any, State], notice: ErrorNotice, status_code: int, headers: dict[str, str] | None
) -> Response[str]:
    env: jinja2.Environment = request.app.state.jinja
    if request.headers.get("HX-Request") == "true":
        content = render_component(
            env, Partial(f"#{PAGE_IDS.composer_error}", "innerHTML", render_component(env, notice))
        )
    else:
        content = Markup(env.get_template("pages/error.html").render(notice=notice))
    return Response(content, media_type=MediaType.HTML, status_code=status_code, headers=headers)
