"""HTTP handlers: the chat pages, asking, stopping, and a generation's event stream."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import jinja2
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Stream, Template
from markupsafe import Markup

from components import Answer, Composer, ErrorNotice, Exchange, Partial, UserMessage, render_component
from components.composer import COMPOSER_ERROR_ID, COMPOSER_ID
from folyam.event_log import EventLog
from folyam.generations import Generation, Generations, NotAccepting, TooManyRunning
from folyam.limits import RateLimiter
from folyam.sessions import CSRF_FIELD, CSRF_HEADER, SessionSigner, session_id_of
from folyam.settings import Settings
from folyam.sse import KEEPALIVE_FRAME, event_stream

__all__ = ["ROUTES", "UserFacingError", "user_facing_error"]

THREAD_ID = "thread"
_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
AnyRequest = Request[Any, Any, State]


class UserFacingError(HTTPException):
    """An error the person sees as the error fragment by the composer (or as a small page)."""

    def __init__(self, status_code: int, title: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.title = title
        self.message = message


def user_facing_error(request: AnyRequest, exc: HTTPException) -> Response[str]:
    """Every HTTP error becomes the one error fragment: for htmx, swapped into the composer's error slot;
    otherwise inside a page of its own."""
    if isinstance(exc, UserFacingError):
        notice = ErrorNotice(exc.title, exc.message)
    elif exc.status_code == 404:
        notice = ErrorNotice("Not found", "There is nothing here, or it is not yours.")
    else:
        notice = ErrorNotice("Request refused", str(exc.detail))
    env: jinja2.Environment = request.app.state.jinja
    if request.headers.get("HX-Request") == "true":
        content = render_component(env, Partial(f"#{COMPOSER_ERROR_ID}", "innerHTML", render_component(env, notice)))
    else:
        content = Markup(env.get_template("pages/error.html").render(notice=notice))
    return Response(content, media_type=MediaType.HTML, status_code=exc.status_code, headers=exc.headers or None)


def _new_id() -> str:
    return secrets.token_urlsafe(16)


def _check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise NotFoundException()
    return value


def _composer(state: State, session_id: str, conversation_id: str) -> Composer:
    settings: Settings = state.settings
    signer: SessionSigner = state.signer
    return Composer(
        action_url=f"/chat/{conversation_id}/messages",
        request_id=_new_id(),
        csrf_token=signer.csrf_token(session_id),
        max_chars=settings.max_query_chars,
    )


def _exchange(generation: Generation) -> Exchange:
    return Exchange(message=UserMessage(text=generation.query), answer=generation.answer())


def _page(request: AnyRequest, state: State, conversation_id: str, exchanges: list[Exchange]) -> Template:
    session_id = session_id_of(request.scope)
    signer: SessionSigner = state.signer
    return Template(
        "pages/chat.html",
        context={
            "settings": state.settings,
            "thread_id": THREAD_ID,
            "exchanges": exchanges,
            "csrf_header": CSRF_HEADER,
            "csrf_token": signer.csrf_token(session_id),
            "composer": _composer(state, session_id, conversation_id),
        },
    )


async def _require_csrf(request: AnyRequest, state: State) -> str:
    session_id = session_id_of(request.scope)
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        form = await request.form()
        field = form.get(CSRF_FIELD)
        token = field if isinstance(field, str) else None
    signer: SessionSigner = state.signer
    if not signer.csrf_ok(session_id, token):
        raise UserFacingError(403, "Page expired", "Reload the page and ask again.")
    return session_id


@get("/", name="new_chat")
async def new_chat(request: AnyRequest, state: State) -> Template:
    return _page(request, state, _new_id(), [])


@get("/chat/{conversation_id:str}", name="chat")
async def chat(conversation_id: FromPath[str], request: AnyRequest, state: State) -> Template:
    generations: Generations = state.generations
    found = generations.conversation(session_id_of(request.scope), _check_id(conversation_id))
    if found is None:
        raise NotFoundException()
    return _page(request, state, conversation_id, [_exchange(g) for g in found])


@post("/chat/{conversation_id:str}/messages", name="ask", status_code=200)
async def ask(conversation_id: FromPath[str], request: AnyRequest, state: State) -> Response[str] | Stream:
    _check_id(conversation_id)
    session_id = await _require_csrf(request, state)
    settings: Settings = state.settings
    limiter: RateLimiter = state.rate_limiter
    client = request.client.host if request.client else "unknown"
    retry_after = limiter.check(client, asyncio.get_running_loop().time())
    if retry_after is not None:
        raise UserFacingError(
            429,
            "Slow down",
            f"Too many questions from here; try again in {retry_after:.0f} s.",
            headers={"Retry-After": str(max(1, round(retry_after)))},
        )

    form = await request.form()
    raw_query, raw_request_id = form.get("query"), form.get("request_id")
    query = raw_query.strip() if isinstance(raw_query, str) else ""
    if not query:
        raise UserFacingError(422, "Nothing to ask", "Type a question first.")
    if len(query) > settings.max_query_chars:
        raise UserFacingError(
            413,
            "Question too long",
            f"It has {len(query):,} characters; the limit is {settings.max_query_chars:,}.",
        )
    request_id = raw_request_id if isinstance(raw_request_id, str) and _ID.fullmatch(raw_request_id) else _new_id()

    generations: Generations = state.generations
    try:
        generation, _ = generations.start(session_id, conversation_id, request_id, query)
    except PermissionError:
        raise NotFoundException() from None
    except TooManyRunning as exc:
        raise UserFacingError(
            429, "Too many answers at once", f"Wait for one of your {exc.limit} running answers to finish."
        ) from None
    except NotAccepting:
        raise UserFacingError(503, "Server restarting", "Try again in a moment.") from None

    if request.headers.get("HX-Request") != "true":
        return _streamed_page(request, state, conversation_id, generation)
    env: jinja2.Environment = state.jinja
    exchange = render_component(env, _exchange(generation))
    composer = render_component(env, _composer(state, session_id, conversation_id))
    body = render_component(env, Partial(f"#{THREAD_ID}", "beforeend", exchange)) + render_component(
        env, Partial(f"#{COMPOSER_ID}", "outerHTML", composer)
    )
    # The conversation's own URL goes into the address bar, so a reload comes back to it.
    return Response(body, media_type=MediaType.HTML, headers={"HX-Push-Url": f"/chat/{conversation_id}"})


def _streamed_page(request: AnyRequest, state: State, conversation_id: str, generation: Generation) -> Stream:
    """Without JavaScript the form posts normally: the answer comes as an HTML document streamed as it
    is written, each finished block as it is done (a plain page cannot replace a live tail)."""
    generations: Generations = state.generations
    event_log: EventLog = state.event_log
    session_id = session_id_of(request.scope)
    earlier = [g for g in generations.conversation(session_id, conversation_id) or [] if g.id != generation.id]
    streaming = Answer(generation_id=generation.id, events_url=None, body=_BODY_MARK, status=_STATUS_MARK)
    exchanges = [*map(_exchange, earlier), Exchange(UserMessage(generation.query), streaming)]
    page = _page(request, state, conversation_id, exchanges)
    html = state.jinja.get_template(page.template_name).render(page.context)
    head, _, rest = html.partition(_BODY_MARK)
    middle, _, foot = rest.partition(_STATUS_MARK)

    async def document() -> AsyncIterator[str]:
        yield head
        sent = 0
        async for _ in event_log.follow(generation.id, 0, state.settings.keepalive_interval):
            for part in generation.body[sent:]:
                yield part
            sent = len(generation.body)
        yield middle
        yield generation.status or Markup()
        yield foot

    return Stream(document(), media_type=MediaType.HTML, headers={"X-Accel-Buffering": "no"})


_BODY_MARK = Markup("\x00body\x00")
_STATUS_MARK = Markup("\x00status\x00")


@post("/generations/{generation_id:str}/stop", name="stop", status_code=204)
async def stop(generation_id: FromPath[str], request: AnyRequest, state: State) -> None:
    session_id = await _require_csrf(request, state)
    generations: Generations = state.generations
    generation = generations.get(session_id, _check_id(generation_id))
    if generation is None:
        raise NotFoundException()
    generations.stop(generation)


@get("/generations/{generation_id:str}/events", name="events")
async def events(
    generation_id: FromPath[str],
    request: AnyRequest,
    state: State,
    after: FromQuery[int | None] = None,
) -> Stream:
    generations: Generations = state.generations
    event_log: EventLog = state.event_log
    if generations.get(session_id_of(request.scope), _check_id(generation_id)) is None:
        raise NotFoundException()
    cursor = _cursor(request.headers.get("last-event-id"), after)
    keepalive = state.settings.keepalive_interval

    async def frames() -> AsyncIterator[bytes]:
        async for batch in event_log.follow(generation_id, cursor, keepalive):
            yield b"".join([event.frame for event in batch]) if batch else KEEPALIVE_FRAME

    return event_stream(frames())


def _cursor(last_event_id: str | None, after: int | None) -> int:
    # The header is what the SSE client sends on reconnect, so it is newer than ?after=.
    value = (last_event_id or "").strip()
    if value.isdigit() and len(value) <= 18:  # ids are small; a huge number is no reason to fail
        return int(value)
    return max(after or 0, 0)


ROUTES = [new_chat, chat, ask, stop, events]
