"""What every page of the app's frame needs: the conversation list, the theme, the CSRF token, the
default model. Handlers add their own content to it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from litestar import Request
from litestar.datastructures import State

from folyam.components._conversation_list import ConversationEntry, ConversationList
from folyam.components._export_link import ExportLink
from folyam.components._ids import PAGE_IDS
from folyam.components._theme import THEME_COOKIE, THEMES, Theme, ThemeSwitch
from folyam.sessions import CSRF_HEADER, SessionSigner, cookie_values, is_new_session, session_id_of
from folyam.store import ConversationStore, ListPosition

__all__ = [
    "LIST_PAGE",
    "conversation_list",
    "conversation_page",
    "current_conversation",
    "is_local_path",
    "list_position",
    "page_context",
    "theme_of",
]

# The list shows this many conversations at a time, newest first; "Older conversations" brings the next.
LIST_PAGE: Final = 50
# A place in the list, as the link to the next page carries it: the last entry's time (µs since the epoch,
# UTC) and id. Bounded, so parsing it is constant work.
_LIST_POSITION: Final = re.compile(r"(\d{1,17})\.([A-Za-z0-9_-]{8,64})")
_EPOCH: Final = datetime(1970, 1, 1)  # (the store's times are naive UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
# A path a theme switch may go back to: one of ours, never another site (no "//", no scheme, no "\").
_LOCAL_PATH: Final = re.compile(r"/(?:[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*)?")

AnyRequest = Request[Any, Any, State]


def theme_of(request: AnyRequest) -> Theme:
    for value in cookie_values(request.scope, THEME_COOKIE):
        for theme in THEMES:
            if value == theme:
                return theme
    return "system"


def is_local_path(value: str) -> bool:
    return len(value) <= 200 and _LOCAL_PATH.fullmatch(value) is not None


def current_conversation(request: AnyRequest) -> str | None:
    """The conversation the htmx page shows (htmx sends the page's URL with each request)."""
    path = urlsplit(request.headers.get("HX-Current-URL", "")).path
    prefix = "/chat/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def list_position(value: str) -> ListPosition | None:
    """The place in the list a link to the next page names; None for anything else."""
    match = _LIST_POSITION.fullmatch(value)
    if match is None:
        return None
    return ListPosition(_EPOCH + int(match[1]) * _MICROSECOND, match[2])


def _older_than(position: ListPosition) -> str:
    """The URL of the page after `position`."""
    micros = (position.updated_at - _EPOCH) // _MICROSECOND
    return f"/conversations?before={micros}.{position.conversation_id}"


async def conversation_page(
    state: State, session_id: str, current_id: str | None, older_than: ListPosition | None = None
) -> tuple[tuple[ConversationEntry, ...], str | None]:
    """A page of the session's conversations (the newest, or those after `older_than`), and the URL of
    the next page if there is one."""
    store: ConversationStore = state.store
    summaries = await store.conversations(session_id, LIST_PAGE + 1, older_than=older_than)
    shown = summaries[:LIST_PAGE]
    more = _older_than(shown[-1].position) if len(summaries) > LIST_PAGE else None
    return tuple(ConversationEntry(s.id, s.title, current=s.id == current_id) for s in shown), more


async def conversation_list(state: State, session_id: str, current_id: str | None) -> ConversationList:
    entries, more = await conversation_page(state, session_id, current_id)
    return ConversationList(entries, more)


async def page_context(request: AnyRequest, state: State, *, conversation_id: str | None = None) -> dict[str, Any]:
    """The frame's context. `conversation_id` is the open conversation, when it is stored."""
    session_id = session_id_of(request.scope)
    signer: SessionSigner = state.signer
    csrf_token = signer.csrf_token(session_id)
    theme = theme_of(request)
    back = request.url.path if request.method == "GET" and is_local_path(request.url.path) else "/"
    return {
        "page_ids": PAGE_IDS,
        "settings": state.settings,
        "theme": theme,
        "theme_switch": ThemeSwitch(theme, csrf_token, back),
        # A visitor without a session cookie has no conversations yet: no query for the empty list.
        "sidebar": ConversationList(())
        if is_new_session(request.scope)
        else await conversation_list(state, session_id, conversation_id),
        "csrf_header": CSRF_HEADER,
        "csrf_token": csrf_token,
        "export_link": ExportLink(conversation_id),
    }
