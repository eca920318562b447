"""Generations: the registry of server-owned answer tasks, with the limits on how many may run.

A generation belongs to the browser session that asked; a re-sent form (same request id) returns the
generation it started. Each keeps the page state its events add up to (finished blocks, the live tail
through its renderer, the status), so a reload renders the answer so far and resumes after the last
event it includes. The task itself is a `GenerationRun`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import jinja2
from markupsafe import Markup

from components import Answer
from folyam.event_log import EventLog
from folyam.fragments import AnswerFragments
from folyam.limits import Slots
from folyam.providers import ChatMessage, Provider
from folyam.rendering import AnswerRenderer
from folyam.runner import GenerationRun, StopReason
from folyam.settings import Settings

__all__ = ["Generation", "Generations", "NotAccepting", "NotYours", "TooManyRunning"]

LimitScope = Literal["session", "client", "server"]


class TooManyRunning(Exception):
    """Raised when a session, a client address or the whole server already runs as many answers as
    it may."""

    def __init__(self, scope: LimitScope, limit: int) -> None:
        super().__init__(f"at most {limit} answers may run at once per {scope}")
        self.scope = scope
        self.limit = limit


class NotAccepting(Exception):
    """Raised when the server is shutting down and starts no new generations."""


class NotYours(Exception):
    """Raised when a session asks in a conversation that belongs to another session."""


@dataclass(eq=False)
class Generation:
    id: str
    session_id: str
    client: str
    conversation_id: str
    request_id: str
    query: str
    # The page state the events so far add up to, and the seq of the last event included.
    body: list[Markup] = field(default_factory=list)
    status: Markup | None = None
    last_seq: int = 0
    # The model's raw text, for the conversation history sent with later questions.
    text: list[str] = field(default_factory=list)
    finished_at: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    renderer: AnswerRenderer | None = field(default=None, repr=False)
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
        if not self.running or self.renderer is None:
            return Answer(generation_id=self.id, events_url=None, body=Markup().join(self.body), status=self.status)
        return Answer(
            generation_id=self.id,
            events_url=f"{self.events_url}?after={self.last_seq}" if self.last_seq else self.events_url,
            stop_url=self.stop_url,
            body=Markup().join(self.body),
            tail=self.renderer.tail_html(),
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
        # Running answers per session, per client address, and in all (one key).
        self._running: dict[LimitScope, Slots] = {
            "session": Slots(settings.max_running_per_session),
            "client": Slots(settings.max_running_per_client),
            "server": Slots(settings.max_running),
        }
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

    def start(
        self, session_id: str, conversation_id: str, request_id: str, query: str, *, client: str = ""
    ) -> tuple[Generation, bool]:
        """Start a generation, or return the one this request id already started. Returns
        (generation, started): a re-sent form never runs the model twice."""
        if not self.owns_conversation(session_id, conversation_id):
            raise NotYours(conversation_id)
        existing = self._by_request.get((session_id, request_id))
        if existing is not None and existing.id in self._generations:
            return existing, False
        if not self._accepting:
            raise NotAccepting
        keys: dict[LimitScope, str] = {"session": session_id, "client": client, "server": ""}
        for scope, slots in self._running.items():
            if not slots.available(keys[scope]):
                raise TooManyRunning(scope, slots.limit)

        conversation = self._conversations.setdefault(conversation_id, _Conversation(session_id))
        messages = [*_history(conversation.generations), ChatMessage(role="user", content=query)]
        generation = Generation(
            id=secrets.token_urlsafe(16),
            session_id=session_id,
            client=client,
            conversation_id=conversation_id,
            request_id=request_id,
            query=query,
            renderer=self._renderer_factory(),
        )
        assert generation.renderer is not None
        self._event_log.open(generation.id)
        pieces = self._provider.stream(messages, max_tokens=self._settings.max_output_tokens)
        fragments = AnswerFragments(self._env, generation.id)
        run = GenerationRun(generation, self._event_log, fragments, self._settings, generation.renderer)
        model = self._provider.model
        for scope, slots in self._running.items():
            slots.take(keys[scope])
        generation.task = asyncio.create_task(run.execute(pieces, model=model), name=f"generation-{generation.id}")

        def ended(_: asyncio.Task[None]) -> None:
            # A task cancelled before its first step never runs its body: end the answer all the same.
            run.end_if_unfinished(model)
            for scope, slots in self._running.items():
                slots.give_back(keys[scope])

        generation.task.add_done_callback(ended)
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
