"""Generations: server-owned tasks that read a provider's stream, render it, and append SSE events.

A generation never waits for a browser. Deltas are coalesced into at most one event per flush
interval (the first goes out at once, so time to first token is not delayed); the last events are the
final fragment (a notice if the answer did not end normally, then the timing) and a named `done`
event that closes the stream. Each generation keeps the page state its events add up to, so a reload
renders the answer so far and resumes after the last event it includes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Literal

import jinja2
from markupsafe import Markup

from components import Answer, ErrorNotice, Partial, SwapStyle, Timing, render_component
from components.answer import body_id, status_id, tail_id
from folyam.event_log import Event, EventLog
from folyam.providers import ChatMessage, Provider, ProviderError, StreamPiece, TextDelta, Usage
from folyam.rendering import AnswerRenderer, RenderUpdate
from folyam.settings import Settings
from folyam.sse import encode_event

__all__ = ["DONE_EVENT", "Generation", "Generations", "NotAccepting", "TooManyRunning"]

DONE_EVENT = "done"
_MARKER = Markup("\x00content\x00")  # never in rendered content: markdown-it replaces NUL
StopReason = Literal["stopped", "shutdown"]

logger = logging.getLogger(__name__)


class TooManyRunning(Exception):
    """Raised when a session already has as many running generations as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a session may run at most {limit} answers at once")
        self.limit = limit


class NotAccepting(Exception):
    """Raised when the server is shutting down and starts no new generations."""


@dataclass(eq=False)
class Generation:
    id: str
    session_id: str
    conversation_id: str
    request_id: str
    query: str
    # The page state the events so far add up to, and the seq of the last event included.
    body: list[Markup] = field(default_factory=list)
    tail: Markup = field(default_factory=Markup)
    status: Markup | None = None
    last_seq: int = 0
    # The model's raw text, for the conversation history sent with later questions.
    text: list[str] = field(default_factory=list)
    finished_at: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    stop_reason: StopReason | None = None

    @property
    def events_url(self) -> str:
        return f"/generations/{self.id}/events"

    @property
    def stop_url(self) -> str:
        return f"/generations/{self.id}/stop"

    @property
    def running(self) -> bool:
        return self.finished_at is None

    def answer(self) -> Answer:
        """The answer component for this generation as it stands: a reload resumes after last_seq."""
        if not self.running:
            return Answer(generation_id=self.id, events_url=None, body=Markup().join(self.body), status=self.status)
        return Answer(
            generation_id=self.id,
            events_url=f"{self.events_url}?after={self.last_seq}" if self.last_seq else self.events_url,
            stop_url=self.stop_url,
            body=Markup().join(self.body),
            tail=self.tail,
        )


@dataclass(eq=False)
class _Conversation:
    session_id: str
    generations: list[Generation] = field(default_factory=list)


class Generations:
    """Starts, stops, finds and forgets generations; created in the app's lifespan."""

    def __init__(
        self,
        *,
        provider: Provider,
        event_log: EventLog,
        env: jinja2.Environment,
        settings: Settings,
        renderer_factory: Callable[[], AnswerRenderer],
    ) -> None:
        self._provider = provider
        self._event_log = event_log
        self._env = env
        self._settings = settings
        self._renderer_factory = renderer_factory
        self._generations: dict[str, Generation] = {}
        self._conversations: dict[str, _Conversation] = {}
        self._by_request: dict[tuple[str, str], Generation] = {}
        self._accepting = True

    def owns_conversation(self, session_id: str, conversation_id: str) -> bool:
        """True when the conversation is this session's or is new; False when another session's."""
        conversation = self._conversations.get(conversation_id)
        return conversation is None or conversation.session_id == session_id

    def conversation(self, session_id: str, conversation_id: str) -> list[Generation] | None:
        conversation = self._conversations.get(conversation_id)
        if conversation is None or conversation.session_id != session_id:
            return None
        return list(conversation.generations)

    def get(self, session_id: str, generation_id: str) -> Generation | None:
        generation = self._generations.get(generation_id)
        return generation if generation is not None and generation.session_id == session_id else None

    def start(self, session_id: str, conversation_id: str, request_id: str, query: str) -> tuple[Generation, bool]:
        """Start a generation, or return the one this request id already started. Returns
        (generation, started): a re-sent form never runs the model twice."""
        if not self.owns_conversation(session_id, conversation_id):
            raise PermissionError(conversation_id)
        existing = self._by_request.get((session_id, request_id))
        if existing is not None and existing.id in self._generations:
            return existing, False
        if not self._accepting:
            raise NotAccepting
        limit = self._settings.max_running_per_session
        if sum(1 for g in self._generations.values() if g.session_id == session_id and g.running) >= limit:
            raise TooManyRunning(limit)

        conversation = self._conversations.setdefault(conversation_id, _Conversation(session_id))
        messages = [*_history(conversation.generations), ChatMessage(role="user", content=query)]
        generation = Generation(
            id=secrets.token_urlsafe(16),
            session_id=session_id,
            conversation_id=conversation_id,
            request_id=request_id,
            query=query,
        )
        self._event_log.open(generation.id)
        pieces = self._provider.stream(messages, max_tokens=self._settings.max_output_tokens)
        run = _Run(generation, self._event_log, self._env, self._settings, self._renderer_factory())
        model = self._provider.model
        generation.task = asyncio.create_task(run.execute(pieces, model=model), name=f"generation-{generation.id}")
        # A task cancelled before its first step never runs its body: end the answer all the same.
        generation.task.add_done_callback(lambda _: run.end_if_unfinished(model))
        self._generations[generation.id] = generation
        self._by_request[(session_id, request_id)] = generation
        conversation.generations.append(generation)
        return generation, True

    def stop(self, generation: Generation, reason: StopReason = "stopped") -> None:
        """Cancel the run: the provider's stream is closed at once (so is the upstream connection)
        and the answer ends with what arrived, a notice and the timing so far."""
        if generation.running and generation.task is not None and generation.stop_reason is None:
            generation.stop_reason = reason
            generation.task.cancel()

    def forget_expired(self, now: float) -> int:
        """Drop finished generations older than the retention; returns how many were dropped."""
        cutoff = now - self._settings.retention
        expired = [g for g in self._generations.values() if g.finished_at is not None and g.finished_at < cutoff]
        for generation in expired:
            del self._generations[generation.id]
            self._by_request.pop((generation.session_id, generation.request_id), None)
            self._event_log.forget(generation.id)
            conversation = self._conversations.get(generation.conversation_id)
            if conversation is not None:
                conversation.generations.remove(generation)
                if not conversation.generations:
                    del self._conversations[generation.conversation_id]
        return len(expired)

    def __len__(self) -> int:
        return len(self._generations)

    async def drain(self, grace: float) -> None:
        """Shutdown: accept no new generations, let running ones finish within `grace` seconds,
        then end the rest with a notice."""
        self._accepting = False
        running = [g.task for g in self._generations.values() if g.running and g.task is not None]
        if running:
            await asyncio.wait(running, timeout=grace)
        await self.aclose()

    async def aclose(self) -> None:
        running = [g for g in self._generations.values() if g.running and g.task is not None]
        for generation in running:
            self.stop(generation, "shutdown")
        await asyncio.gather(*(g.task for g in running if g.task is not None), return_exceptions=True)


def _history(generations: list[Generation], exchanges: int = 10) -> list[ChatMessage]:
    """The conversation so far (its last finished exchanges), so a follow-up question has context."""
    messages: list[ChatMessage] = []
    for generation in [g for g in generations if not g.running][-exchanges:]:
        messages.append(ChatMessage(role="user", content=generation.query))
        messages.append(ChatMessage(role="assistant", content="".join(generation.text)))
    return messages


_NOTICES: dict[StopReason, ErrorNotice] = {
    "stopped": ErrorNotice("Stopped", "You stopped this answer; what arrived is kept."),
    "shutdown": ErrorNotice("The answer was stopped", "The server is shutting down."),
}


class _Run:
    """One generation's run: the coalescing clock, the renderer and the event sequence."""

    def __init__(
        self,
        generation: Generation,
        event_log: EventLog,
        env: jinja2.Environment,
        settings: Settings,
        renderer: AnswerRenderer,
    ) -> None:
        self._generation = generation
        self._id = generation.id
        self._log = event_log
        self._env = env
        self._settings = settings
        self._renderer = renderer
        self._loop = asyncio.get_running_loop()
        self._pending: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._next_flush_at = 0.0  # in the past: the first delta is flushed at once
        self._started_at = self._loop.time()
        self._first_token_at: float | None = None
        self._chunks = 0
        self._usage: Usage | None = None
        self._wrappers: dict[tuple[str, SwapStyle], tuple[str, str]] = {}

    async def execute(self, pieces: AsyncGenerator[StreamPiece], *, model: str) -> None:
        notice: ErrorNotice | None = None
        try:
            async with contextlib.aclosing(pieces), asyncio.timeout(self._settings.generation_timeout):
                async for piece in pieces:
                    if isinstance(piece, TextDelta):
                        self._on_text(piece.text)
                    else:
                        self._usage = piece
        except ProviderError as exc:
            notice = ErrorNotice(exc.title, str(exc))
        except TimeoutError:
            notice = ErrorNotice(
                "The answer took too long",
                f"It was ended after {self._settings.generation_timeout:g} seconds.",
            )
        except asyncio.CancelledError:
            notice = _NOTICES[self._generation.stop_reason or "shutdown"]
            if self._generation.stop_reason is None:
                raise  # cancelled by someone else: end the answer, then let the cancellation through
        except Exception:
            logger.exception("generation %s failed", self._id)
            notice = ErrorNotice("Something went wrong", "An unexpected error ended the answer.")
        finally:
            self._finish(notice, model)

    def end_if_unfinished(self, model: str) -> None:
        if self._generation.finished_at is None:
            self._finish(_NOTICES[self._generation.stop_reason or "shutdown"], model)

    def _on_text(self, text: str) -> None:
        if self._first_token_at is None:
            self._first_token_at = self._loop.time()
        self._chunks += 1
        self._pending.append(text)
        if self._timer is not None:
            return  # a flush is already scheduled
        if self._loop.time() >= self._next_flush_at:
            self._flush()
        else:
            self._timer = self._loop.call_at(self._next_flush_at, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._generation.text.append(text)
        self._emit_update(self._renderer.feed(text))
        self._next_flush_at = self._loop.time() + self._settings.flush_interval

    def _finish(self, notice: ErrorNotice | None, model: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._flush()
        self._emit_update(self._renderer.finish())
        status = Markup()
        if notice is not None:
            status += render_component(self._env, notice)
        status += render_component(self._env, self._timing(model))
        self._generation.status = status
        self._emit(self._partial(status_id(self._id), "innerHTML", status))
        self._emit("", DONE_EVENT)
        self._generation.finished_at = self._loop.time()
        self._log.close(self._id)

    def _timing(self, model: str) -> Timing:
        finished_at = self._loop.time()
        usage = self._usage
        tokens = usage.completion_tokens if usage is not None else self._chunks
        first = self._first_token_at
        streaming_seconds = finished_at - first if first is not None else 0.0
        return Timing(
            model=model,
            first_token_ms=(first - self._started_at) * 1000 if first is not None else None,
            total_ms=(finished_at - self._started_at) * 1000,
            chunks=self._chunks,
            tokens=tokens,
            tokens_reported=usage is not None,
            tokens_per_second=tokens / streaming_seconds if streaming_seconds > 0 and tokens else None,
            prompt_tokens=usage.prompt_tokens if usage is not None else None,
            total_tokens=usage.total_tokens if usage is not None else None,
        )

    def _emit_update(self, update: RenderUpdate) -> None:
        """One event for one update, so an appended block and the new tail land in the same swap."""
        generation = self._generation
        partials = []
        if update.replace is not None:
            generation.body = [update.replace]
            partials.append(self._partial(body_id(self._id), "innerHTML", update.replace))
        if update.append:
            generation.body.append(update.append)
            partials.append(self._partial(body_id(self._id), "beforeend", update.append))
        if update.tail is not None:
            generation.tail = update.tail
            if update.tail_append is not None:
                extend = update.tail_append
                partials.append(self._partial(tail_id(self._id), "beforeend", extend.html, extend.path))
            else:
                partials.append(self._partial(tail_id(self._id), "innerHTML", update.tail))
        if partials:
            self._emit(
                Markup().join(partials),
                replaces_tail=update.tail is not None and update.tail_append is None,
                only_tail=update.tail is not None and len(partials) == 1,
            )

    def _partial(self, element_id: str, swap: SwapStyle, content: Markup, selector: str = "") -> Markup:
        # The partial template is rendered once per target and swap, around a marker; each event
        # then only joins strings (this runs for every event of every answer).
        key = (f"#{element_id}{selector}", swap)
        wrapper = self._wrappers.get(key)
        if wrapper is None:
            html = render_component(self._env, Partial(target=key[0], swap=swap, content=_MARKER))
            before, _, after = html.partition(_MARKER)
            wrapper = self._wrappers[key] = (before, after)
        return Markup(wrapper[0] + content + wrapper[1])

    def _emit(
        self, data: str, event: str | None = None, *, replaces_tail: bool = False, only_tail: bool = False
    ) -> None:
        seq = self._generation.last_seq + 1
        self._log.append(self._id, Event(seq, encode_event(seq, data, event), replaces_tail, only_tail))
        self._generation.last_seq = seq
