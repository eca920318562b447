"""What every page of the app's frame needs: the conversation list, the theme, the CSRF token, the
default model. Handlers add their own content to it."""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlsplit

from litestar import Request
from litestar.datastructures import State

from folyam.components._conversation_list import ConversationEntry, ConversationList
from folyam.components._export_link import ExportLink
from folyam.components._ids import PAGE_IDS
from folyam.components._theme import THEME_COOKIE, THEMES, Theme, ThemeSwitch
from folyam.sessions import CSRF_HEADER, SessionSigner, cookie_values, is_new_session, session_id_of
from folyam.store import ConversationStore

__all__ = ["SIDEBAR_LIMIT", "conversation_list", "current_conversation", "is_local_path", "page_context", "theme_of"]

# The list shows this many of the newest conversations.
SIDEBAR_LIMIT: Final = 200
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


async def conversation_list(state: State, session_id: str, current_id: str | None) -> ConversationList:
    store: ConversationStore = state.store
    summaries = await store.conversations(session_id, SIDEBAR_LIMIT)
    return ConversationList(tuple(ConversationEntry(s.id, s.title, current=s.id == current_id) for s in summaries))


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
