"""Generations: the answers this process runs, and how any process starts, stops and ends one.

Starting records the exchange in the store (idempotent per request id, across processes), takes a slot
under the running-answer limits and runs a `GenerationRun` task here. While it runs, the page state its
events add up to lives in the local `Generation`; when it ends, the outcome goes to the store in one
write. Stop requests reach the process that runs the answer through the coordination layer; an answer
whose process died is ended by whichever process notices (its lease lapsed).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from markupsafe import Markup

from folyam.components import Answer, ErrorNotice
from folyam.components._thinking import Thinking
from folyam.coordination import Coordination, LimitScope
from folyam.event_log import Event, EventLog
from folyam.fragments import AnswerFragments, Ending, Endings, thinking_of
from folyam.providers import BetweenReads, ChatMessage, Provider, StreamPiece
from folyam.rendering import AnswerRenderer
from folyam.runner import DONE_EVENT, GenerationRun, Outcome, StopReason, start_run
from folyam.settings import Settings
from folyam.sse import encode_event
from folyam.store import ConversationBusy, ConversationStore, ExchangeRecord, StartedExchange, StoreUnavailable

__all__ = ["INTERRUPTED", "Generation", "Generations", "NotAccepting", "Started", "TooManyRunning"]

HISTORY_EXCHANGES: Final = 10
INTERRUPTED: Final = ErrorNotice("The server stopped while answering", "What arrived is kept.")
logger = logging.getLogger(__name__)


class TooManyRunning(Exception):
    """Raised when a session, a client address or the whole server already runs as many answers as
    it may."""

    def __init__(self, scope: LimitScope, limit: int) -> None:
        super().__init__(f"at most {limit} answers may run at once per {scope}")
        self.scope = scope
        self.limit = limit


class NotAccepting(Exception):
    """Raised when the server is shutting down and starts no new generations."""


@dataclass(eq=False)
class Generation:
    """An answer running in this process."""

    id: str
    session_id: str
    conversation_id: str
    query: str
    # The exchange as the store recorded it at the start (running).
    record: ExchangeRecord
    slots: dict[LimitScope, str]
    renderer: AnswerRenderer
    # The thinking block's own renderer: reasoning never reaches the answer's.
    reasoning_renderer: AnswerRenderer
    # The page state the events so far add up to, and the seq of the last event included.
    body: list[Markup] = field(default_factory=list)
    status: Markup | None = None
    last_seq: int = 0
    # The model's raw text, for the store.
    text: list[str] = field(default_factory=list)
    # The same for its thinking; `thinking` is how its block stands: None (none yet), open, or ended
    # after `thinking_seconds` (closed once the answer started; open when thinking is all it sent).
    reasoning: list[str] = field(default_factory=list)
    reasoning_body: list[Markup] = field(default_factory=list)
    thinking_seconds: float | None = None
    thinking_open: bool = True
    refused: bool = False
    finished_at: float | None = None
    outcome: Outcome | None = None
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

    def stop(self, reason: StopReason = "stopped") -> None:
        """Cancel the run if it still runs (once): its task ends the answer with what arrived."""
        if self.running and self.task is not None and self.stop_reason is None:
            self.stop_reason = reason
            self.task.cancel()

    def answer(self) -> Answer:
        """The answer component as it stands: a reload resumes after last_seq."""
        if not self.running:
            return Answer(
                generation_id=self.id,
                events_url=None,
                body=Markup().join(self.body),
                status=self.status,
                thinking=self.thinking(),
                refused=self.refused,
            )
        return Answer(
            generation_id=self.id,
            events_url=f"{self.events_url}?after={self.last_seq}" if self.last_seq else self.events_url,
            body=Markup().join(self.body),
            tail=self.renderer.tail_html(),
            thinking=self.thinking(),
            refused=self.refused,
        )

    def thinking(self) -> Thinking | None:
        if not self.reasoning:
            return None
        return Thinking(
            self.id,
            body=Markup().join(self.reasoning_body),
            tail=self.reasoning_renderer.tail_html(),
            seconds=self.thinking_seconds,
            open=self.thinking_open,
        )


@dataclass(frozen=True, slots=True)
class Started:
    exchange: ExchangeRecord
    # The answer, when it runs in this process (a repeated request may find it running in another).
    generation: Generation | None
    # The exchanges it replaced (`replaces`), deleted from the store, in order: gone from the page too.
    replaced: list[str] = field(default_factory=list)
    # The conversation's title (the question's, when this started the conversation).
    title: str = ""


class Generations:
    """Created in the app's lifespan; `run_background()` holds leases and listens for stop requests."""

    def __init__(
        self,
        *,
        provider: Provider,
        event_log: EventLog,
        store: ConversationStore,
        coordination: Coordination,
        endings: Endings,
        settings: Settings,
        renderer_factory: Callable[[], AnswerRenderer],
        render_markdown: Callable[[str], Markup],
    ) -> None:
        self._provider = provider
        self._event_log = event_log
        self._store = store
        self._coordination = coordination
        self._endings = endings
        self._settings = settings
        self._renderer_factory = renderer_factory
        self._render_markdown = render_markdown
        self._running: dict[str, Generation] = {}
        # Ended here, by when: the memory log forgets their events after the retention.
        self._ended: dict[str, float] = {}
        self._recording: set[asyncio.Task[None]] = set()
        self._accepting = True

    @property
    def event_log(self) -> EventLog:
        return self._event_log

    @property
    def store(self) -> ConversationStore:
        return self._store

    def local(self, generation_id: str) -> Generation | None:
        return self._running.get(generation_id)

    async def start(
        self,
        *,
        session_id: str,
        conversation_id: str,
        request_id: str,
        query: str,
        client: str,
        model: str | None = None,
        system_prompt: str | None = None,
        replaces: str | None = None,
    ) -> Started:
        """Start an answer, or find the one this request id already started (a re-sent form never runs
        the model twice, whichever process it reaches). `model` None is the configured one; a blank
        `system_prompt` is none. With `replaces`, that exchange and every later one are deleted first, in
        the same transaction (regenerate, edit). Raises ConversationBusy while the conversation answers
        another question, NotYours and UnknownExchange as the store does, TooManyRunning, NotAccepting."""
        if not self._accepting:
            raise NotAccepting
        generation_id = secrets.token_urlsafe(16)
        slots: dict[LimitScope, str] = {"session": session_id, "client": client, "server": ""}
        refused = await self._coordination.take_slot(slots, generation_id)
        if refused is not None:
            raise TooManyRunning(refused, self._limit(refused))
        model = model or self._provider.model
        prompt = system_prompt if system_prompt and system_prompt.strip() else None

        async def record() -> StartedExchange:
            return await self._store.start_exchange(
                exchange_id=generation_id,
                session_id=session_id,
                conversation_id=conversation_id,
                request_id=request_id,
                question=query,
                model=model,
                system_prompt=prompt,
                history=HISTORY_EXCHANGES,
                replaces=replaces,
            )

        try:
            try:
                started = await record()
            except ConversationBusy as busy:
                # The answer in the way may have lost its process: then it is ended, and this one starts.
                if not await self._end_abandoned(session_id, busy.exchange_id):
                    raise
                started = await record()
        except BaseException:
            await self._coordination.give_back_slot(slots, generation_id)
            raise
        if not started.created:
            await self._coordination.give_back_slot(slots, generation_id)
            return Started(started.exchange, self._running.get(started.exchange.id), title=started.title)
        self.forget(started.replaced)
        generation = Generation(
            id=generation_id,
            session_id=session_id,
            conversation_id=conversation_id,
            query=query,
            record=started.exchange,
            slots=slots,
            renderer=self._renderer_factory(),
            reasoning_renderer=self._renderer_factory(),
        )
        system = [ChatMessage(role="system", content=prompt)] if prompt else []
        self._run(generation, [*system, *started.history, ChatMessage(role="user", content=query)], model)
        return Started(started.exchange, generation, started.replaced, started.title)

    async def _end_abandoned(self, session_id: str, exchange_id: str) -> bool:
        if exchange_id in self._running:
            return False
        exchange = await self._store.exchange(session_id, exchange_id)
        return exchange is not None and exchange.running and await self.end_if_abandoned(exchange)

    def flush_interval(self) -> float:
        """How long an answer's deltas are coalesced into one event: the configured interval for one
        answer, growing in proportion to the answers running here up to the busy interval at
        `busy_answers` (fewer, larger events keep a loaded process on time; readers do not see 20
        updates a second as smoother than 10). Never shorter than the configured interval."""
        settings = self._settings
        load = min(1.0, len(self._running) / max(1, settings.busy_answers))
        base = settings.flush_interval
        return max(base, base + (settings.busy_flush_interval - base) * load)

    def forget(self, generation_ids: Iterable[str]) -> None:
        """Drop the event streams of answers deleted from the store (truncated, replaced)."""
        for generation_id in generation_ids:
            self._ended.pop(generation_id, None)
            self._event_log.forget(generation_id)

    def _run(self, generation: Generation, messages: list[ChatMessage], model: str) -> None:
        def pieces(between_reads: BetweenReads) -> AsyncGenerator[StreamPiece]:
            max_tokens = self._settings.max_output_tokens
            return self._provider.stream(messages, max_tokens=max_tokens, model=model, between_reads=between_reads)

        start_run(
            generation,
            pieces,
            event_log=self._event_log,
            fragments=AnswerFragments(self._endings, generation.id),
            settings=self._settings,
            model=model,
            record=self._record,
            recording=self._recording,
            flush_interval=self.flush_interval,
        )
        self._running[generation.id] = generation

    async def _record(self, generation: Generation, run: GenerationRun) -> None:
        """The outcome into the store, in one write; then the stream ends and the slot goes back."""
        outcome = generation.outcome
        assert outcome is not None
        notice = (outcome.notice.title, outcome.notice.message) if outcome.notice else None
        try:
            for attempt in range(3):
                try:
                    await self._store.finish_exchange(
                        generation.id,
                        answer="".join(generation.text),
                        status=outcome.status,
                        notice=notice,
                        timing=outcome.timing,
                        reasoning="".join(generation.reasoning) or None,
                        refused=generation.refused,
                    )
                    break
                except StoreUnavailable:
                    if attempt == 2:
                        logger.exception("answer %s could not be recorded", generation.id)
                    await asyncio.sleep(0.5 * (attempt + 1))
        finally:
            run.end_stream()
            self._running.pop(generation.id, None)
            self._ended[generation.id] = asyncio.get_running_loop().time()
            try:
                # Its last events written before its lease goes: a lease gone with the stream still
                # open means a dead process to the others.
                await self._event_log.flush(generation.id)
                await self._coordination.give_back_slot(generation.slots, generation.id)
            except Exception:
                logger.warning("answer %s: its slot could not be given back (it lapses)", generation.id)

    async def stop(self, exchange: ExchangeRecord) -> None:
        """Stop a running answer, wherever it runs: at once here, else through the coordination."""
        if exchange.id in self._running:
            self.stop_local(exchange.id)
        elif exchange.running:
            await self._coordination.request_stop(exchange.id)

    def stop_local(self, generation_id: str, reason: StopReason = "stopped") -> None:
        """Cancel the run: the provider's stream is closed at once (so is the upstream connection) and the
        answer ends with what arrived, a notice and the timing so far."""
        generation = self._running.get(generation_id)
        if generation is not None:
            generation.stop(reason)

    async def end_if_abandoned(self, exchange: ExchangeRecord) -> bool:
        """An answer whose stream is still open while no process holds its lease has lost its process: end
        its stream (once, whoever gets there first). True if this call ended it."""
        if exchange.id in self._running or await self._coordination.alive(exchange.id):
            return False
        if await self._event_log.state(exchange.id) == "closed" or not await self._coordination.claim(exchange.id):
            return False
        await self._end_stream(exchange)
        return True

    async def _end_stream(self, exchange: ExchangeRecord) -> None:
        """Close an answer's stream with the answer as it ended: if the store says it still runs, its
        process died: with a notice and the text that arrived, recorded as interrupted."""
        current = await self._store.exchange(exchange.session_id, exchange.id)
        if current is None:
            return  # deleted meanwhile
        thinking: Thinking | None = None
        if current.running:
            text, reasoning = await self._event_log.text(exchange.id), await self._event_log.reasoning(exchange.id)
            body = self._render_markdown(text)
            # Shown as an ended answer's thinking is: closed, unless thinking is all that came.
            thinking = thinking_of(replace(current, answer=text, reasoning=reasoning or None), self._render_markdown)
            ending = Ending(
                exchange.id, exchange.conversation_id, exchange.session_id, "interrupted", INTERRUPTED, None, text
            )
            await self._store.finish_exchange(
                exchange.id,
                answer=text,
                status="interrupted",
                notice=(INTERRUPTED.title, INTERRUPTED.message),
                timing=None,
                only_if_running=True,
                reasoning=reasoning or None,
            )
            logger.warning("answer %s: its process stopped while answering; ended here", exchange.id)
        else:  # it ended, but its stream was never closed
            body, ending = self._render_markdown(current.answer), self._endings.of_record(current)
            thinking = thinking_of(current, self._render_markdown)
        missing = await self._event_log.state(exchange.id) == "missing"
        last = 0 if missing else await self._event_log.last_seq(exchange.id)
        ended = AnswerFragments(self._endings, exchange.id).ended(body, ending, thinking)
        if missing:
            self._event_log.open(exchange.id)  # (one that is open already was opened by the process that died)
        self._event_log.append(exchange.id, Event(last + 1, encode_event(last + 1, ended), replaces_tail=True))
        self._event_log.append(exchange.id, Event(last + 2, encode_event(last + 2, "", DONE_EVENT)))
        self._event_log.close(exchange.id)

    async def interrupt_leftovers(self) -> None:
        """At start: answers recorded as running that no process holds are ended (one process: all of
        them, left by a crash)."""
        for exchange in await self._store.running_exchanges():
            if not await self._coordination.alive(exchange.id) and await self._coordination.claim(exchange.id):
                await self._end_stream(exchange)

    async def hold_leases(self) -> None:
        """Until cancelled: renew the leases of the answers running here."""
        while True:
            await asyncio.sleep(2.0)
            try:
                await self._coordination.hold({g.id: g.slots for g in self._running.values() if g.running})
            except Exception:
                logger.warning("renewing leases failed; retrying")

    def forget_expired(self, now: float) -> int:
        """Drop the events of answers that ended longer ago than the retention (they stay in the store)."""
        cutoff = now - self._settings.retention
        expired = [generation_id for generation_id, at in self._ended.items() if at < cutoff]
        for generation_id in expired:
            del self._ended[generation_id]
            self._event_log.forget(generation_id)
        return len(expired)

    async def drain(self, grace: float) -> None:
        """Shutdown: accept no new answers, let running ones finish within `grace` seconds, then end the
        rest with a notice; every outcome is recorded before this returns."""
        self._accepting = False
        running = [g.task for g in self._running.values() if g.running and g.task is not None]
        if running:
            await asyncio.wait(running, timeout=grace)
        await self.aclose()

    async def aclose(self) -> None:
        running = [g for g in self._running.values() if g.running and g.task is not None]
        for generation in running:
            self.stop_local(generation.id, "shutdown")
        await asyncio.gather(*(g.task for g in running if g.task is not None), return_exceptions=True)
        await asyncio.sleep(0)  # the done callbacks schedule the recording
        if self._recording:
            await asyncio.gather(*self._recording, return_exceptions=True)

    def _limit(self, scope: LimitScope) -> int:
        settings = self._settings
        return {
            "session": settings.max_running_per_session,
            "client": settings.max_running_per_client,
            "server": settings.max_running,
        }[scope]
