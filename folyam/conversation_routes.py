"""HTTP handlers around conversations: the list's rename and delete, export as Markdown, and the theme.
Each works with htmx (a fragment in place) and without JavaScript (a page of its own, then a redirect)."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

import jinja2
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from folyam.components import render_component
from folyam.components._confirm_delete import ConfirmDelete
from folyam.components._conversation_list import ConversationEntry, ConversationItems, ConversationList, RenameForm
from folyam.components._theme import THEME_COOKIE, THEMES
from folyam.errors import UserFacingError
from folyam.export import conversation_markdown
from folyam.generations import Generations
from folyam.guards import FORM_OVERHEAD, check_id, read_bounded_form, require_csrf
from folyam.pages import conversation_page, current_conversation, is_local_path, list_position, page_context
from folyam.sessions import SessionSigner, session_id_of
from folyam.settings import Settings
from folyam.store import ConversationRecord, ConversationStore
from folyam.store.sql import title_of

__all__ = ["CONVERSATION_ROUTES"]

AnyRequest = Request[Any, Any, State]
_TITLE_FORM_BYTES: Final = 200 * 12 + FORM_OVERHEAD
_THEME_COOKIE_MAX_AGE: Final = 400 * 24 * 3600  # browsers cap cookies at 400 days


def _is_htmx(request: AnyRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _see_other(location: str) -> Response[str]:
    return Response("", status_code=303, headers={"Location": location})


def _html(env: jinja2.Environment, component: object) -> Response[str]:
    return Response(render_component(env, component), media_type=MediaType.HTML)


async def _summary(state: State, session_id: str, conversation_id: str) -> ConversationRecord:
    store: ConversationStore = state.store
    found = await store.conversation(session_id, check_id(conversation_id))
    if found is None:
        raise NotFoundException()
    return found


def _csrf_token(state: State, request: AnyRequest) -> str:
    signer: SessionSigner = state.signer
    return signer.csrf_token(session_id_of(request.scope))


async def _form_page(
    request: AnyRequest, state: State, heading: str, form: object, intro: str | None = None
) -> Template:
    context = await page_context(request, state)
    context.update(heading=heading, form=form, intro=intro)
    return Template("pages/form.html", context=context)


@get("/conversations", name="older_conversations")
async def older_conversations(
    request: AnyRequest, state: State, before: FromQuery[str] = ""
) -> Response[str] | Template:
    """The list's next page after a place in it: with htmx its items (and the link to the page after), in
    place of the link that asked; without, a page of its own."""
    position = list_position(before)
    if position is None:
        raise UserFacingError(400, "Not a place in the list", "Load the page again to see your conversations.")
    htmx = _is_htmx(request)
    current = current_conversation(request) if htmx else None
    entries, more = await conversation_page(state, session_id_of(request.scope), current, position)
    if htmx:
        return _html(state.jinja, ConversationItems(entries, more))
    return await _form_page(request, state, "Older conversations", ConversationList(entries, more, in_sidebar=False))


@get("/chat/{conversation_id:str}/entry", name="conversation_entry")
async def conversation_entry(conversation_id: FromPath[str], request: AnyRequest, state: State) -> Response[str]:
    summary = await _summary(state, session_id_of(request.scope), conversation_id)
    entry = ConversationEntry(summary.id, summary.title, current=current_conversation(request) == summary.id)
    return _html(state.jinja, entry)


@get("/chat/{conversation_id:str}/rename", name="rename_form")
async def rename_form(conversation_id: FromPath[str], request: AnyRequest, state: State) -> Response[str] | Template:
    summary = await _summary(state, session_id_of(request.scope), conversation_id)
    form = RenameForm(summary.id, summary.title, _csrf_token(state, request), in_list=_is_htmx(request))
    if _is_htmx(request):
        return _html(state.jinja, form)
    return await _form_page(request, state, "Rename conversation", form)


@post("/chat/{conversation_id:str}/rename", name="rename", status_code=200)
async def rename(conversation_id: FromPath[str], request: AnyRequest, state: State) -> Response[str]:
    session_id, form = await require_csrf(request, state, max_bytes=_TITLE_FORM_BYTES)
    if form is None:
        form = await read_bounded_form(request, state, _TITLE_FORM_BYTES)
    title = title_of(form.get("title", ""))
    if not title:
        raise UserFacingError(422, "No title", "Type a title for the conversation.")
    store: ConversationStore = state.store
    if not await store.rename(session_id, check_id(conversation_id), title):
        raise NotFoundException()
    if not _is_htmx(request):
        return _see_other(f"/chat/{conversation_id}")
    summary = await _summary(state, session_id, conversation_id)
    entry = ConversationEntry(summary.id, summary.title, current=current_conversation(request) == summary.id)
    return _html(state.jinja, entry)


@get("/chat/{conversation_id:str}/delete", name="confirm_delete")
async def confirm_delete(conversation_id: FromPath[str], request: AnyRequest, state: State) -> Template:
    summary = await _summary(state, session_id_of(request.scope), conversation_id)
    form = ConfirmDelete(summary.id, summary.title, _csrf_token(state, request))
    return await _form_page(
        request, state, "Delete conversation", form, "The conversation and all its answers will be gone for good."
    )


@post("/chat/{conversation_id:str}/delete", name="delete", status_code=200)
async def delete(conversation_id: FromPath[str], request: AnyRequest, state: State) -> Response[str]:
    session_id, _ = await require_csrf(request, state, max_bytes=FORM_OVERHEAD)
    store: ConversationStore = state.store
    generations: Generations = state.generations
    # An answer still streaming there is stopped first: its upstream is closed, not left to run.
    for record in await store.exchanges(session_id, check_id(conversation_id)) or []:
        if record.running:
            await generations.stop(record)
    if not await store.delete(session_id, conversation_id):
        raise NotFoundException()
    if not _is_htmx(request):
        return _see_other("/")
    if current_conversation(request) == conversation_id:
        return Response("", headers={"HX-Redirect": "/"})
    return Response("", media_type=MediaType.HTML)  # the entry's hx-swap="delete" removes it


@get("/chat/{conversation_id:str}/export", name="export")
async def export(conversation_id: FromPath[str], request: AnyRequest, state: State) -> Response[str]:
    """The conversation as a Markdown file: the questions, the answers' own markdown, how each ended."""
    session_id = session_id_of(request.scope)
    summary = await _summary(state, session_id, conversation_id)
    store: ConversationStore = state.store
    records = await store.exchanges(session_id, conversation_id) or []
    text = conversation_markdown(summary.title, records)
    filename = _filename(summary.title)
    disposition = f"attachment; filename=\"{filename}.md\"; filename*=UTF-8''{quote(summary.title[:80])}.md"
    return Response(text, media_type="text/markdown; charset=utf-8", headers={"Content-Disposition": disposition})


def _filename(title: str) -> str:
    """An ASCII file name from the title (the UTF-8 one goes in filename*)."""
    ascii_words = "".join(c if c.isascii() and c.isalnum() else "-" for c in title[:80])
    return "-".join(filter(None, ascii_words.split("-"))).lower() or "conversation"


@post("/theme", name="theme", status_code=200)
async def set_theme(request: AnyRequest, state: State) -> Response[str]:
    _, form = await require_csrf(request, state, max_bytes=FORM_OVERHEAD)
    if form is None:
        form = await read_bounded_form(request, state, FORM_OVERHEAD)
    theme = form.get("theme", "")
    if theme not in THEMES:
        raise UserFacingError(422, "Unknown theme", "Choose Auto, Light or Dark.")
    next_url = form.get("next", "/")
    settings: Settings = state.settings
    secure = "; Secure" if settings.secure_cookies else ""
    cookie = f"{THEME_COOKIE}={theme}; Path=/; Max-Age={_THEME_COOKIE_MAX_AGE}; SameSite=Lax{secure}"
    location = next_url if is_local_path(next_url) else "/"
    return Response("", status_code=303, headers={"Location": location, "Set-Cookie": cookie})


CONVERSATION_ROUTES = [
    older_conversations,
    conversation_entry,
    rename_form,
    rename,
    confirm_delete,
    delete,
    export,
    set_theme,
]
