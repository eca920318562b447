"""HTTP handlers: the chat page, posting a question, and a generation's event stream."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator

import jinja2
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Stream, Template
from markupsafe import Markup

from components import Answer, Composer, ErrorNotice, Partial, UserMessage, render_component
from components.composer import COMPOSER_ERROR_ID, COMPOSER_ID
from folyam.event_log import EventLog
from folyam.generations import Generations
from folyam.settings import Settings
from folyam.sse import KEEPALIVE_FRAME, event_stream

__all__ = ["chat_page", "generation_events", "post_message"]

THREAD_ID = "thread"
_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


def _new_id() -> str:
    return secrets.token_urlsafe(16)


def _messages_url(conversation_id: str) -> str:
    return f"/chat/{conversation_id}/messages"


def _composer(settings: Settings, conversation_id: str, **kwargs: object) -> Composer:
    return Composer(
        action_url=_messages_url(conversation_id),
        request_id=_new_id(),
        max_chars=settings.max_query_chars,
        **kwargs,  # type: ignore[arg-type]
    )


def _html(content: str, status_code: int = 200) -> Response[str]:
    return Response(content, media_type=MediaType.HTML, status_code=status_code)


@get("/", name="chat_page")
async def chat_page(state: State) -> Template:
    settings: Settings = state.settings
    conversation_id = _new_id()
    return Template(
        "pages/chat.html",
        context={
            "settings": settings,
            "thread_id": THREAD_ID,
            "composer": _composer(settings, conversation_id),
        },
    )


@post("/chat/{conversation_id:str}/messages", name="post_message", status_code=200)
async def post_message(
    conversation_id: FromPath[str], request: Request[object, object, State], state: State
) -> Response[str]:
    if not _ID.fullmatch(conversation_id):
        raise NotFoundException(f"no conversation {conversation_id!r}")
    settings: Settings = state.settings
    env: jinja2.Environment = state.jinja
    form = await request.form()
    raw_query = form.get("query")
    query = raw_query.strip() if isinstance(raw_query, str) else ""

    error: ErrorNotice | None = None
    status_code = 200
    if not query:
        error, status_code = ErrorNotice("Nothing to ask", "Type a question first."), 422
    elif len(query) > settings.max_query_chars:
        error = ErrorNotice(
            "Question too long",
            f"It has {len(query):,} characters; the limit is {settings.max_query_chars:,}.",
        )
        status_code = 413
    if error is not None:
        # Only the error slot changes; the person's text stays in the textarea.
        partial = Partial(target_id=COMPOSER_ERROR_ID, swap="innerHTML", content=render_component(env, error))
        return _html(render_component(env, partial), status_code)

    generations: Generations = state.generations
    generation = generations.start(conversation_id, query)
    exchange = render_component(env, UserMessage(text=query)) + render_component(
        env, Answer(generation_id=generation.id, events_url=generation.events_url)
    )
    body = Markup().join(
        [
            render_component(env, Partial(target_id=THREAD_ID, swap="beforeend", content=exchange)),
            render_component(
                env,
                Partial(
                    target_id=COMPOSER_ID,
                    swap="outerHTML",
                    content=render_component(env, _composer(settings, conversation_id)),
                ),
            ),
        ]
    )
    return _html(body)


@get("/generations/{generation_id:str}/events", name="generation_events")
async def generation_events(
    generation_id: FromPath[str],
    request: Request[object, object, State],
    state: State,
    after: FromQuery[int | None] = None,
) -> Stream:
    event_log: EventLog = state.event_log
    if not _ID.fullmatch(generation_id) or generation_id not in event_log:
        raise NotFoundException(f"no generation {generation_id!r}")
    cursor = _cursor(request.headers.get("last-event-id"), after)
    settings: Settings = state.settings

    async def frames() -> AsyncIterator[bytes]:
        async for batch in event_log.follow(generation_id, cursor, settings.keepalive_interval):
            yield b"".join([event.frame for event in batch]) if batch else KEEPALIVE_FRAME

    return event_stream(frames())


def _cursor(last_event_id: str | None, after: int | None) -> int:
    # The header is what the browser's SSE client sends on reconnect, so it is newer than ?after=.
    if last_event_id is not None and last_event_id.strip().isdigit():
        return int(last_event_id.strip())
    return max(after or 0, 0)
