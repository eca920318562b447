"""HTTP handlers: the chat pages, asking, stopping, and a generation's event stream."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import jinja2
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Stream, Template
from markupsafe import Markup

from folyam.components import AnswerIds, Partial, UserMessage, render_component
from folyam.components._answer_status import Announcement
from folyam.components._composer import Composer, ComposerAction, ModelChoice, RequestIdField
from folyam.components._conversation_list import ConversationEntry
from folyam.components._export_link import ExportLink
from folyam.components._ids import PAGE_IDS
from folyam.components._message import EditForm
from folyam.components._theme import ThemeSwitch
from folyam.components._thinking import Thinking
from folyam.coordination import Coordination
from folyam.errors import UserFacingError
from folyam.event_log import EventLog
from folyam.fragments import AnswerFragments, Endings
from folyam.generations import Generations, NotAccepting, TooManyRunning
from folyam.guards import FORM_OVERHEAD, ID, check_id, new_id, read_bounded_form, require_csrf
from folyam.limits import Slots
from folyam.markdown import MarkdownPipeline
from folyam.models import ModelCatalog
from folyam.pages import current_conversation, page_context, theme_of
from folyam.runner import DONE_EVENT
from folyam.sessions import SessionSigner, session_id_of
from folyam.settings import Settings
from folyam.sse import KEEPALIVE_FRAME, encode_event, event_stream
from folyam.store import (
    ConversationBusy,
    ConversationRecord,
    ConversationStore,
    ExchangeRecord,
    NotYours,
    UnknownExchange,
)
from folyam.store.sql import title_of
from folyam.streaming import event_cursor, follow_events
from folyam.views import ExchangeViews

__all__ = ["ROUTES"]

AnyRequest = Request[Any, Any, State]


def _is_htmx(request: AnyRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _ask_form_bytes(settings: Settings) -> int:
    # Any question and instructions within the limit fit: 4 bytes per character in UTF-8, 3 characters
    # per byte encoded.
    return settings.max_query_chars * 24 + FORM_OVERHEAD


async def _models(state: State, selected: str | None) -> ModelChoice:
    settings: Settings = state.settings
    catalog: ModelCatalog = state.models
    names = await catalog.names()
    chosen = selected if selected is not None and selected in names else settings.model
    return ModelChoice(tuple(names), chosen)


async def _composer(
    state: State,
    session_id: str,
    conversation_id: str,
    *,
    running: str | None = None,
    conversation: ConversationRecord | None = None,
) -> Composer:
    settings: Settings = state.settings
    signer: SessionSigner = state.signer
    return Composer(
        action_url=f"/chat/{conversation_id}/messages",
        request_id=new_id(),
        csrf_token=signer.csrf_token(session_id),
        max_chars=settings.max_query_chars,
        action=ComposerAction(f"/generations/{running}/stop" if running else None),
        models=await _models(state, conversation.model if conversation else None),
        system_prompt=(conversation.system_prompt or "") if conversation else "",
    )


async def _chat_context(
    request: AnyRequest,
    state: State,
    conversation_id: str,
    records: list[ExchangeRecord],
    conversation: ConversationRecord | None,
    streaming: object = None,
) -> dict[str, Any]:
    views: ExchangeViews = state.views
    session_id = session_id_of(request.scope)
    running = next((r.id for r in records if r.running), None) if streaming is None else None
    context = await page_context(request, state, conversation_id=conversation_id if conversation else None)
    context.update(
        title=conversation.title if conversation else None,
        exchanges=list(map(views.exchange, records)),
        streaming=streaming,
        composer=await _composer(state, session_id, conversation_id, running=running, conversation=conversation),
    )
    return context


def _client(request: AnyRequest) -> str:
    # The peer's address; a proxy's X-Forwarded-For only counts when the operator trusts that proxy
    # (FOLYAM_FORWARDED_ALLOW_IPS, applied by uvicorn before we see the request).
    return request.client.host if request.client else "unknown"


@get("/", name="new_chat")
async def new_chat(request: AnyRequest, state: State) -> Template:
    context = await _chat_context(request, state, new_id(), [], None)
    return Template("pages/chat.html", context=context)


@get("/chat/{conversation_id:str}", name="chat")
async def chat(
    conversation_id: FromPath[str], request: AnyRequest, state: State, wait: FromQuery[str | None] = None
) -> Template | Stream:
    """A conversation. `?wait=<answer>` is where a question asked without JavaScript lands: the page
    streams while that answer is written (a plain page cannot follow SSE), then is the conversation's."""
    store: ConversationStore = state.store
    session_id = session_id_of(request.scope)
    conversation = await store.conversation(session_id, check_id(conversation_id))
    records = await store.exchanges(session_id, conversation_id)
    if conversation is None or records is None:
        raise NotFoundException()
    waited = next((r for r in records if r.id == wait and r.running), None) if wait else None
    if waited is not None:
        return await _waiting_page(request, state, conversation, records, waited)
    context = await _chat_context(request, state, conversation_id, records, conversation)
    return Template("pages/chat.html", context=context)


@post("/chat/{conversation_id:str}/messages", name="ask", status_code=200)
async def ask(conversation_id: FromPath[str], request: AnyRequest, state: State) -> Response[str]:
    check_id(conversation_id)
    settings: Settings = state.settings
    session_id, form, query = await _question_form(request, state)
    raw_request_id = form.get("request_id", "")
    request_id = raw_request_id if ID.fullmatch(raw_request_id) else new_id()
    store: ConversationStore = state.store
    # The page's composer sends both fields: only a form without them (an older page, another client)
    # falls back on what the conversation had, so only then is it read.
    needs_stored = not form.get("model") or "system_prompt" not in form
    stored = await store.conversation(session_id, conversation_id) if needs_stored else None
    model = await _chosen_model(state, form.get("model"), stored)
    # A form without the field (an older page) keeps the conversation's instructions; an empty one clears them.
    system_prompt = form.get("system_prompt", stored.system_prompt if stored else None)
    if system_prompt is not None and len(system_prompt) > settings.max_query_chars:
        raise UserFacingError(413, "Instructions too long", f"The limit is {settings.max_query_chars:,} characters.")
    return await _answer(
        request,
        state,
        session_id,
        conversation_id,
        Question(query, request_id, model, system_prompt.strip() if system_prompt else None),
    )


@post("/chat/{conversation_id:str}/exchanges/{exchange_id:str}/regenerate", name="regenerate", status_code=200)
async def regenerate(
    conversation_id: FromPath[str], exchange_id: FromPath[str], request: AnyRequest, state: State
) -> Response[str]:
    """Ask an answered question again: the answer and every exchange after it make way for the new one."""
    session_id, _ = await require_csrf(request, state, max_bytes=FORM_OVERHEAD)
    await _rate_limit(request, state)
    record, conversation = await _own_exchange(state, session_id, conversation_id, exchange_id)
    question = Question(
        record.question, new_id(), await _chosen_model(state, None, conversation), conversation.system_prompt
    )
    return await _answer(request, state, session_id, conversation_id, question, replacing=exchange_id)


@get("/chat/{conversation_id:str}/exchanges/{exchange_id:str}/edit", name="edit_form")
async def edit_form(
    conversation_id: FromPath[str], exchange_id: FromPath[str], request: AnyRequest, state: State
) -> Response[str] | Template:
    session_id = session_id_of(request.scope)
    record, _ = await _own_exchange(state, session_id, conversation_id, exchange_id)
    signer: SessionSigner = state.signer
    settings: Settings = state.settings
    form = EditForm(
        action_url=f"/chat/{conversation_id}/exchanges/{exchange_id}/edit",
        cancel_url=f"/chat/{conversation_id}",
        text=record.question,
        csrf_token=signer.csrf_token(session_id),
        max_chars=settings.max_query_chars,
    )
    if _is_htmx(request):
        return Response(render_component(state.jinja, form), media_type=MediaType.HTML)
    context = await page_context(request, state, conversation_id=conversation_id)
    context.update(heading="Edit your question", form=form, intro="The answers from here on are replaced.")
    return Template("pages/form.html", context=context)


@post("/chat/{conversation_id:str}/exchanges/{exchange_id:str}/edit", name="edit", status_code=200)
async def edit(
    conversation_id: FromPath[str], exchange_id: FromPath[str], request: AnyRequest, state: State
) -> Response[str]:
    """Ask an edited question in place of an earlier one (whose answer, and what followed, make way)."""
    session_id, _, query = await _question_form(request, state)
    _, conversation = await _own_exchange(state, session_id, conversation_id, exchange_id)
    question = Question(query, new_id(), await _chosen_model(state, None, conversation), conversation.system_prompt)
    return await _answer(request, state, session_id, conversation_id, question, replacing=exchange_id)


@dataclass(frozen=True)
class Question:
    text: str
    request_id: str
    model: str
    system_prompt: str | None


async def _question_form(request: AnyRequest, state: State) -> tuple[str, dict[str, str], str]:
    """A posted question's session id, form and question, checked in order: the CSRF token (before any
    body is read), the rate limit, then the form's size and the question's."""
    settings: Settings = state.settings
    max_bytes = _ask_form_bytes(settings)
    too_long = _question_too_long(settings, None)
    session_id, form = await require_csrf(request, state, max_bytes=max_bytes, too_large=too_long)
    await _rate_limit(request, state)
    if form is None:
        form = await read_bounded_form(request, state, max_bytes, too_long)
    return session_id, form, _question(settings, form.get("query", ""))


async def _own_exchange(
    state: State, session_id: str, conversation_id: str, exchange_id: str
) -> tuple[ExchangeRecord, ConversationRecord]:
    store: ConversationStore = state.store
    record = await store.exchange(session_id, check_id(exchange_id))
    conversation = await store.conversation(session_id, check_id(conversation_id))
    if record is None or conversation is None or record.conversation_id != conversation_id:
        raise NotFoundException()
    return record, conversation


async def _rate_limit(request: AnyRequest, state: State) -> None:
    coordination: Coordination = state.coordination
    retry_after = await coordination.rate_limit(_client(request))
    if retry_after is not None:
        raise UserFacingError(
            429,
            "Slow down",
            f"Too many questions from here; try again in {retry_after:.0f} s.",
            headers={"Retry-After": str(max(1, round(retry_after)))},
        )


def _question(settings: Settings, raw: str) -> str:
    query = raw.strip()
    if not query:
        raise UserFacingError(422, "Nothing to ask", "Type a question first.")
    if len(query) > settings.max_query_chars:
        raise _question_too_long(settings, len(query))
    return query


async def _chosen_model(state: State, requested: str | None, conversation: ConversationRecord | None) -> str:
    settings: Settings = state.settings
    catalog: ModelCatalog = state.models
    if requested:
        if not await catalog.allows(requested):
            raise UserFacingError(422, "Unknown model", "Choose one of the models in the list.")
        return requested
    if conversation is not None and conversation.model and await catalog.allows(conversation.model):
        return conversation.model
    return settings.model


async def _answer(
    request: AnyRequest,
    state: State,
    session_id: str,
    conversation_id: str,
    question: Question,
    replacing: str | None = None,
) -> Response[str]:
    """Start the answer to a question (in place of `replacing` and what followed it, if given). With htmx
    the response is partials: the exchange into the thread, the composer's Stop, the list; without, a
    redirect to the conversation's page, which streams while the answer is written."""
    store: ConversationStore = state.store
    generations: Generations = state.generations
    try:
        started = await generations.start(
            session_id=session_id,
            conversation_id=conversation_id,
            request_id=question.request_id,
            query=question.text,
            client=_client(request),
            model=question.model,
            system_prompt=question.system_prompt,
            replaces=replacing,
        )
    except (NotYours, UnknownExchange):
        raise NotFoundException() from None
    except ConversationBusy:
        raise UserFacingError(
            409, "Still answering", "Wait for the answer to finish, or stop it, before asking again."
        ) from None
    except TooManyRunning as exc:
        raise _too_many_running(exc) from None
    except NotAccepting:
        raise UserFacingError(503, "Server restarting", "Try again in a moment.") from None

    if not _is_htmx(request):
        return Response(
            "", status_code=303, headers={"Location": f"/chat/{conversation_id}?wait={started.exchange.id}"}
        )
    env: jinja2.Environment = state.jinja
    views: ExchangeViews = state.views
    if replacing is None:
        thread = Partial(f"#{PAGE_IDS.thread}", "beforeend", render_component(env, views.exchange(started.exchange)))
    else:
        records = await store.exchanges(session_id, conversation_id) or []
        thread = Partial(
            f"#{PAGE_IDS.thread}", "innerHTML", Markup().join(render_component(env, views.exchange(r)) for r in records)
        )
    running = started.exchange.id if started.exchange.running else None
    signer: SessionSigner = state.signer
    theme_switch = ThemeSwitch(theme_of(request), signer.csrf_token(session_id), f"/chat/{conversation_id}")
    stop = ComposerAction(f"/generations/{running}/stop" if running else None)
    partials = [
        thread,
        Partial(f"#{PAGE_IDS.composer_action}", "outerHTML", render_component(env, stop)),
        Partial(f"#{PAGE_IDS.composer_request_id}", "outerHTML", render_component(env, RequestIdField(new_id()))),
        Partial(f"#{PAGE_IDS.composer_error}", "innerHTML", Markup()),
        Partial(f"#{PAGE_IDS.export_link}", "outerHTML", render_component(env, ExportLink(conversation_id))),
        # The theme switch comes back to the conversation's URL, now in the address bar.
        Partial(f"#{PAGE_IDS.theme_switch}", "outerHTML", render_component(env, theme_switch)),
        Partial(f"#{PAGE_IDS.announcer}", "innerHTML", render_component(env, Announcement("Answering…"))),
    ]
    if current_conversation(request) != conversation_id:
        # Asked from a new chat: the conversation joins the list, on top. (A page already showing the
        # conversation has it listed; it moves up on the next page load. Not the whole list again per
        # question: its cost grows with the session's conversations.)
        entry = ConversationEntry(conversation_id, started.title or title_of(question.text), current=True)
        partials.append(Partial(f"#{PAGE_IDS.conversation_list}", "afterbegin", render_component(env, entry)))
    body = Markup().join(render_component(env, partial) for partial in partials)
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

    def __init__(self) -> None:
        self.html = Markup()

    def __html__(self) -> str:
        return str(self.html)


async def _waiting_page(
    request: AnyRequest,
    state: State,
    conversation: ConversationRecord,
    records: list[ExchangeRecord],
    waited: ExchangeRecord,
) -> Stream:
    """The page a question asked without JavaScript lands on: it streams while the answer is written,
    each finished block as it is done (a plain page cannot replace a live tail). Jinja's async mode reaches
    the answer's body and waits on its blocks, so the page's structure decides where they go, whatever the
    question says. The blocks come from the answer's text in the event log, rendered here, so the page
    streams the same whichever process runs the answer."""
    status = _StatusWhenDone()
    streaming = {
        "message": UserMessage(waited.question, edit_url=f"/chat/{conversation.id}/exchanges/{waited.id}/edit"),
        "ids": AnswerIds.of(waited.id),
        "body": _blocks(state, waited, status),
        "thinking": _thinking(state, waited),
        "status": status,
    }
    earlier = [r for r in records if r.id != waited.id]
    context = await _chat_context(request, state, conversation.id, earlier, conversation, streaming)
    page = state.streaming_jinja.get_template("pages/chat.html").generate_async(context)
    return Stream(_sent_together(page), media_type=MediaType.HTML, headers={"X-Accel-Buffering": "no"})


async def _blocks(state: State, waited: ExchangeRecord, status: _StatusWhenDone) -> AsyncIterator[Markup]:
    """The answer's finished blocks as they are written, then its status. The text comes from the
    process running the answer (its own, or the shared log's copy), and at the end from the store. An
    empty block tells `_sent_together` to send what the page has so far: it waits next."""
    event_log: EventLog = state.event_log
    generations: Generations = state.generations
    settings: Settings = state.settings
    markdown: MarkdownPipeline = state.markdown
    renderer = markdown.renderer()
    seen = 0

    def feed(text: str) -> Markup:
        # The text only grows; a source that has none (a finished answer's process forgot it) adds nothing.
        nonlocal seen
        if len(text) <= seen:
            return Markup()
        update = renderer.feed(text[seen:])
        seen = len(text)
        return update.append

    yield Markup()
    async for frames in _frames(state, waited, 0, settings, lambda: None):
        if frames == KEEPALIVE_FRAME:
            continue
        local = generations.local(waited.id)
        block = feed("".join(local.text) if local is not None else await event_log.text(waited.id))
        if block:
            yield block
            yield Markup()
    store: ConversationStore = state.store
    record = await store.exchange(waited.session_id, waited.id)
    if record is None:
        return  # deleted meanwhile
    block = feed(record.answer)
    if block:
        yield block
    final = renderer.finish()
    if final.append:
        yield final.append
    if not record.running:  # the end is in the store before `done` goes out
        endings: Endings = state.endings
        status.html = endings.status(endings.of_record(record))


async def _thinking(state: State, waited: ExchangeRecord) -> AsyncIterator[Markup]:
    """The thinking block for the page without JavaScript, before the answer's blocks: once thinking is
    over (the answer's first text, or its end), whole and rendered at once, since a plain page cannot
    update it. Thinking in another process is read from the store once the answer has ended."""
    generations: Generations = state.generations
    views: ExchangeViews = state.views
    markdown: MarkdownPipeline = state.markdown
    yield Markup()  # the page so far goes out before this waits
    local = generations.local(waited.id)
    if local is None and not await _thinks_elsewhere(state, waited):
        return
    if local is None or local.running:
        frames = _frames(state, waited, 0, state.settings, lambda: None)
        async with contextlib.aclosing(frames):
            async for _ in frames:
                if local is not None and (local.text or not local.running):
                    break
    if local is None:
        record = await state.store.exchange(waited.session_id, waited.id)
        thinking = views.thinking(record) if record is not None else None
    elif local.reasoning:
        body = markdown.render("".join(local.reasoning))
        thinking = Thinking(waited.id, body=body, seconds=local.thinking_seconds, open=not local.text)
    else:
        thinking = None
    if thinking is not None:
        yield render_component(state.jinja, thinking)


async def _thinks_elsewhere(state: State, waited: ExchangeRecord) -> bool:
    """Whether an answer run by another process (or already ended) begins with thinking: its events say
    so before its first text."""
    settings: Settings = state.settings
    ids = AnswerIds.of(waited.id)
    slot, body, tail = (f'"#{element_id}"' for element_id in (ids.thinking_slot, ids.body, ids.tail))
    frames = _frames(state, waited, 0, settings, lambda: None)
    async with contextlib.aclosing(frames):
        async for frame in frames:
            text = frame.decode()
            if slot in text:
                return True
            if body in text or tail in text:
                return False
    record = await state.store.exchange(waited.session_id, waited.id)
    return record is not None and bool(record.reasoning)


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


@post("/generations/{generation_id:str}/stop", name="stop", status_code=200)
async def stop(generation_id: FromPath[str], request: AnyRequest, state: State) -> Response[str]:
    session_id, _ = await require_csrf(request, state, max_bytes=FORM_OVERHEAD)
    store: ConversationStore = state.store
    exchange = await store.exchange(session_id, check_id(generation_id))
    if exchange is None:
        raise NotFoundException()
    generations: Generations = state.generations
    await generations.stop(exchange)
    if not _is_htmx(request):  # the composer's form, posted without JavaScript: back to the conversation
        return Response("", status_code=303, headers={"Location": f"/chat/{exchange.conversation_id}"})
    return Response("", status_code=204)


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
    generations: Generations = state.generations
    local = generations.local(check_id(generation_id))
    # An answer running here is known without asking the store (the page asks right after the question).
    exchange = (
        local.record
        if local is not None and local.session_id == session_id
        else await store.exchange(session_id, generation_id)
    )
    if exchange is None:
        raise NotFoundException()
    cursor = event_cursor(request.headers.get("last-event-id"), after)
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
) -> AsyncGenerator[bytes]:
    """The stream's frames after the cursor, then live ones; a comment when it has been quiet a while.
    With several processes it also watches the answer's lease: if its process died, it ends the answer."""
    event_log: EventLog = state.event_log
    generations: Generations = state.generations

    async def abandoned() -> bool:
        return exchange.running and await generations.end_if_abandoned(exchange)

    try:
        if exchange.running and await event_log.state(exchange.id) == "missing" and not settings.shared:
            await generations.end_if_abandoned(exchange)  # a leftover of a crash, found before the sweep
        keepalive = settings.keepalive_interval
        frames = follow_events(
            event_log,
            exchange.id,
            cursor,
            keepalive=keepalive,
            tick=min(keepalive, 2.0) if settings.shared else None,
            on_idle=abandoned if settings.shared else None,
        )
        async with contextlib.aclosing(frames):
            async for frame in frames:
                yield frame
    finally:
        release()


async def _ended(state: State, exchange: ExchangeRecord, cursor: int) -> AsyncIterator[bytes]:
    views: ExchangeViews = state.views
    endings: Endings = state.endings
    ending = endings.of_record(exchange)
    ended = AnswerFragments(endings, exchange.id).ended(views.body(exchange), ending, views.thinking(exchange))
    yield encode_event(cursor + 1, ended) + encode_event(cursor + 2, "", DONE_EVENT)


ROUTES = [new_chat, chat, ask, regenerate, edit_form, edit, stop, events]
