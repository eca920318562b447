"""HTTP handlers: the chat pages, asking, stopping, and a generation's event stream."""

from __future__ import annotations

import asyncio
import re
import secrets
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import jinja2
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Stream, Template
from markupsafe import Markup

from components import Composer, Partial, UserMessage, render_component
from components.composer import COMPOSER_ID
from folyam.coordination import Coordination
from folyam.errors import UserFacingError
from folyam.event_log import EventLog
from folyam.forms import read_form
from folyam.fragments import AnswerFragments
from folyam.generations import Generation, Generations, NotAccepting, TooManyRunning
from folyam.limits import Slots
from folyam.runner import DONE_EVENT
from folyam.sessions import CSRF_FIELD, CSRF_HEADER, SessionSigner, is_new_session, session_id_of
from folyam.settings import Settings
from folyam.sse import KEEPALIVE_FRAME, encode_event, event_stream
from folyam.store import ConversationStore, ExchangeRecord, NotYours
from folyam.views import ExchangeViews

__all__ = ["ROUTES"]

THREAD_ID: Final = "thread"
_ID: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")
_CURSOR: Final = re.compile(r"[0-9]{1,18}")  # ASCII digits only: int() accepts "²" where isdigit() does
# Besides the question: request_id and csrf_token, each well under this.
_FORM_OVERHEAD: Final = 2_048
_MAX_FIELDS: Final = 8
AnyRequest = Request[Any, Any, State]


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


def _page_context(
    request: AnyRequest, state: State, conversation_id: str, exchanges: list[Any], streaming: object = None
) -> dict[str, Any]:
    session_id = session_id_of(request.scope)
    signer: SessionSigner = state.signer
    return {
        "settings": state.settings,
        "thread_id": THREAD_ID,
        "exchanges": exchanges,
        "streaming": streaming,
        "csrf_header": CSRF_HEADER,
        "csrf_token": signer.csrf_token(session_id),
        "composer": _composer(state, session_id, conversation_id),
    }


async def _require_csrf(
    request: AnyRequest, state: State, *, max_bytes: int, too_large: UserFacingError | None = None
) -> tuple[str, dict[str, str] | None]:
    """The session id, once the request proved it comes from our page; and the form, if it had to be
    read for the token. Checked before any body is read: without a session cookie no token can be
    right, and htmx sends the token as a header."""
    session_id = session_id_of(request.scope)
    if is_new_session(request.scope):
        raise _page_expired()
    form = None
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        form = await _read_form(request, state, max_bytes, too_large)
        token = form.get(CSRF_FIELD)
    signer: SessionSigner = state.signer
    if not signer.csrf_ok(session_id, token):
        raise _page_expired()
    return session_id, form


def _page_expired() -> UserFacingError:
    return UserFacingError(403, "Page expired", "Reload the page and ask again.")


async def _read_form(
    request: AnyRequest, state: State, max_bytes: int, too_large: UserFacingError | None = None
) -> dict[str, str]:
    settings: Settings = state.settings
    try:
        return await read_form(request, max_bytes=max_bytes, max_fields=_MAX_FIELDS, timeout=settings.body_timeout)
    except UserFacingError as exc:
        if exc.status_code == 413 and too_large is not None:
            raise too_large from None
        raise


def _client(request: AnyRequest) -> str:
    # The peer's address; a proxy's X-Forwarded-For only counts when the operator trusts that proxy
    # (FOLYAM_FORWARDED_ALLOW_IPS, applied by uvicorn before we see the request).
    return request.client.host if request.client else "unknown"


@get("/", name="new_chat")
async def new_chat(request: AnyRequest, state: State) -> Template:
    return Template("pages/chat.html", context=_page_context(request, state, _new_id(), []))


@get("/chat/{conversation_id:str}", name="chat")
async def chat(conversation_id: FromPath[str], request: AnyRequest, state: State) -> Template:
    store: ConversationStore = state.store
    views: ExchangeViews = state.views
    found = await store.exchanges(session_id_of(request.scope), _check_id(conversation_id))
    if found is None:
        raise NotFoundException()
    exchanges = list(map(views.exchange, found))
    return Template("pages/chat.html", context=_page_context(request, state, conversation_id, exchanges))


@post("/chat/{conversation_id:str}/messages", name="ask", status_code=200)
async def ask(conversation_id: FromPath[str], request: AnyRequest, state: State) -> Response[str] | Stream:
    _check_id(conversation_id)
    settings: Settings = state.settings
    # Any question within the limit fits: 4 bytes per character in UTF-8, 3 characters per byte encoded.
    max_bytes = settings.max_query_chars * 12 + _FORM_OVERHEAD
    too_long = _question_too_long(settings, None)
    session_id, form = await _require_csrf(request, state, max_bytes=max_bytes, too_large=too_long)
    coordination: Coordination = state.coordination
    client = _client(request)
    retry_after = await coordination.rate_limit(client)
    if retry_after is not None:
        raise UserFacingError(
            429,
            "Slow down",
            f"Too many questions from here; try again in {retry_after:.0f} s.",
            headers={"Retry-After": str(max(1, round(retry_after)))},
        )
    if form is None:
        form = await _read_form(request, state, max_bytes, too_long)
    query = form.get("query", "").strip()
    if not query:
        raise UserFacingError(422, "Nothing to ask", "Type a question first.")
    if len(query) > settings.max_query_chars:
        raise _question_too_long(settings, len(query))
    raw_request_id = form.get("request_id", "")
    request_id = raw_request_id if _ID.fullmatch(raw_request_id) else _new_id()

    generations: Generations = state.generations
    try:
        started = await generations.start(
            session_id=session_id, conversation_id=conversation_id, request_id=request_id, query=query, client=client
        )
    except NotYours:
        raise NotFoundException() from None
    except TooManyRunning as exc:
        raise _too_many_running(exc) from None
    except NotAccepting:
        raise UserFacingError(503, "Server restarting", "Try again in a moment.") from None

    if request.headers.get("HX-Request") != "true":
        if started.generation is None:  # a re-sent form, answered by another process: see it there
            return Response("", status_code=303, headers={"Location": f"/chat/{conversation_id}"})
        return await _streamed_page(request, state, conversation_id, started.generation)
    env: jinja2.Environment = state.jinja
    views: ExchangeViews = state.views
    exchange = render_component(env, views.exchange(started.exchange))
    composer = render_component(env, _composer(state, session_id, conversation_id))
    body = render_component(env, Partial(f"#{THREAD_ID}", "beforeend", exchange)) + render_component(
        env, Partial(f"#{COMPOSER_ID}", "outerHTML", composer)
    )
    # The conversation's own URL goes into the address bar, so a reload comes back to it.
    return Response(body, media_type=MediaType.HTML, headers={"HX-Push-Url": f"/chat/{conversation_id}"})


def _question_too_long(settings: Settings, length: int | None) -> UserFacingError:
    limit = f"the limit is {settings.max_query_chars:,} characters"
    message = f"It has {length:,} characters; {limit}." if length is not None else f"It is too long; {limit}."
    return UserFacingError(413, "Question too long", message)


def _too_many_running(exc: TooManyRunning) -> UserFacingError:
    if exc.scope == "session":
        return UserFacingError(
            429, "Too many answers at once", f"Wait for one of your {exc.limit} running answers to finish."
        )
    if exc.scope == "client":
        return UserFacingError(
            429, "Too many answers at once", f"{exc.limit} answers are running from your address; wait a little."
        )
    return UserFacingError(503, "Server busy", "Too many answers are running right now; try again in a moment.")


class _StatusWhenDone:
    """The answer's status as it is when the page reaches it: after the body, so once it has ended."""

    def __init__(self, generation: Generation) -> None:
        self._generation = generation

    def __html__(self) -> str:
        return self._generation.status or ""


async def _streamed_page(request: AnyRequest, state: State, conversation_id: str, generation: Generation) -> Stream:
    """Without JavaScript the form posts normally: the answer comes as the chat page streamed as it is
    written, each finished block as it is done (a plain page cannot replace a live tail). The page is
    rendered by Jinja's async mode, which reaches the answer's body and waits on its blocks: the page's
    structure decides where they go, whatever the question says."""
    store: ConversationStore = state.store
    views: ExchangeViews = state.views
    event_log: EventLog = state.event_log
    session_id = session_id_of(request.scope)
    earlier = [r for r in await store.exchanges(session_id, conversation_id) or [] if r.id != generation.id]

    async def blocks() -> AsyncIterator[Markup]:
        # An empty block tells `_sent_together` to send what the page has so far: it waits next.
        yield Markup()
        sent = 0
        async for _ in event_log.follow(generation.id, 0, state.settings.keepalive_interval):
            for block in generation.body[sent:]:
                yield block
            sent = len(generation.body)
            yield Markup()

    streaming = {
        "message": UserMessage(generation.query),
        "generation_id": generation.id,
        "body": blocks(),
        "status": _StatusWhenDone(generation),
    }
    context = _page_context(request, state, conversation_id, list(map(views.exchange, earlier)), streaming)
    page = state.streaming_jinja.get_template("pages/chat.html").generate_async(context)
    return Stream(_sent_together(page), media_type=MediaType.HTML, headers={"X-Accel-Buffering": "no"})


async def _sent_together(pieces: AsyncIterator[str]) -> AsyncIterator[str]:
    """Jinja yields every piece of output on its own; they go out together, up to each point where the
    page waits for the answer (an empty piece), not one socket write each."""
    buffer: list[str] = []
    async for piece in pieces:
        if piece:
            buffer.append(piece)
        elif buffer:
            yield "".join(buffer)
            buffer.clear()
    if buffer:
        yield "".join(buffer)


@post("/generations/{generation_id:str}/stop", name="stop", status_code=204)
async def stop(generation_id: FromPath[str], request: AnyRequest, state: State) -> None:
    session_id, _ = await _require_csrf(request, state, max_bytes=_FORM_OVERHEAD)
    store: ConversationStore = state.store
    exchange = await store.exchange(session_id, _check_id(generation_id))
    if exchange is None:
        raise NotFoundException()
    generations: Generations = state.generations
    await generations.stop(exchange)


@get("/generations/{generation_id:str}/events", name="events")
async def events(
    generation_id: FromPath[str],
    request: AnyRequest,
    state: State,
    after: FromQuery[int | None] = None,
) -> Stream:
    store: ConversationStore = state.store
    event_log: EventLog = state.event_log
    settings: Settings = state.settings
    session_id = session_id_of(request.scope)
    exchange = await store.exchange(session_id, _check_id(generation_id))
    if exchange is None:
        raise NotFoundException()
    cursor = _cursor(request.headers.get("last-event-id"), after)
    if not exchange.running and await event_log.state(exchange.id) == "missing":
        # Its events expired (the store keeps the answer): the answer as it ended, then done.
        return event_stream(_ended(state, exchange, cursor))
    streams: Slots = state.open_streams
    if not streams.try_take(session_id):
        raise UserFacingError(
            429, "Too many open streams", f"This browser already follows {streams.limit} answers; close a tab."
        )
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            streams.give_back(session_id)

    stream = _frames(state, exchange, cursor, settings, release)
    # Also when the response never starts iterating (the client left first): then `finally` never runs.
    weakref.finalize(stream, release)
    return event_stream(stream)


async def _frames(
    state: State, exchange: ExchangeRecord, cursor: int, settings: Settings, release: Callable[[], None]
) -> AsyncIterator[bytes]:
    """The stream's frames after the cursor, then live ones; a comment when it has been quiet a while.
    With several processes it also watches the answer's lease: if its process died, it ends the answer."""
    event_log: EventLog = state.event_log
    generations: Generations = state.generations
    keepalive = settings.keepalive_interval
    tick = min(keepalive, 2.0) if settings.shared else keepalive
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    try:
        if exchange.running and await event_log.state(exchange.id) == "missing" and not settings.shared:
            await generations.end_if_abandoned(exchange)  # a leftover of a crash, found before the sweep
        async for batch in event_log.follow(exchange.id, cursor, tick):
            if batch:
                quiet_since = loop.time()
                yield b"".join([event.frame for event in batch])
                continue
            if settings.shared and exchange.running and await generations.end_if_abandoned(exchange):
                continue  # its last events come next
            if loop.time() - quiet_since >= keepalive:
                quiet_since = loop.time()
                yield KEEPALIVE_FRAME
    finally:
        release()


async def _ended(state: State, exchange: ExchangeRecord, cursor: int) -> AsyncIterator[bytes]:
    views: ExchangeViews = state.views
    fragments = AnswerFragments(state.jinja, exchange.id)
    ended = fragments.ended(views.body(exchange), views.status(exchange))
    yield encode_event(cursor + 1, ended) + encode_event(cursor + 2, "", DONE_EVENT)


def _cursor(last_event_id: str | None, after: int | None) -> int:
    # The header is what the SSE client sends on reconnect, so it is newer than ?after=.
    value = (last_event_id or "").strip()
    if _CURSOR.fullmatch(value):  # ids are small; a huge or odd one is no reason to fail
        return int(value)
    return max(after or 0, 0)


ROUTES = [new_chat, chat, ask, stop, events]
