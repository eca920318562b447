"""A host app's streamed answers: each one run by Folyam's generation runner from any text (or a
`Provider`) into an event log, with the answer shell for the host's own page and its event stream.

This is the in-memory default: an answer's events and state are kept while it runs and for `retention`
seconds after, in one process. A host that keeps answers for longer gives `record`, awaited with each
ended answer before its stream's `done`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import jinja2
from markupsafe import Markup

from folyam.assets import StaticAssets
from folyam.components import Answer, ErrorNotice, make_environment, render_component
from folyam.components._stream_assets import StreamAssets
from folyam.event_log import EventLog, MemoryEventLog
from folyam.fragments import AnswerFragments, PlainEndings
from folyam.generations import Generation
from folyam.markdown import MarkdownPipeline
from folyam.providers import BetweenReads, ChatMessage, Finished, Provider, StreamPiece, TextDelta
from folyam.runner import GenerationRun, start_run
from folyam.settings import Settings
from folyam.store import ExchangeRecord, ExchangeStatus
from folyam.streaming._events import follow_events

__all__ = ["STATIC_DIR", "AnswerSource", "AnswerStreams", "EndedAnswer", "StreamedAnswer", "text_pieces"]

# The app's static/ (through the folyam/static link in a checkout; its copy in the wheel).
STATIC_DIR: Final = Path(__file__).parents[1] / "static"

AnswerSource = AsyncIterable[str] | Provider
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamedAnswer:
    """A started answer: its id and URLs, and its shell (`html`) for the host's page."""

    id: str
    events_url: str
    stop_url: str
    html: Markup

    def __html__(self) -> str:
        return str(self.html)

    def __str__(self) -> str:  # a page made with str.format gets the shell too
        return str(self.html)


@dataclass(frozen=True, slots=True)
class EndedAnswer:
    """How an answer ended, for a host that records it."""

    id: str
    owner: str
    # The answer's markdown as it arrived (all of it, or what came before a stop or an error).
    text: str
    status: ExchangeStatus
    notice: ErrorNotice | None
    timing: dict[str, Any]
    reasoning: str | None
    refused: bool


async def text_pieces(texts: AsyncIterable[str]) -> AsyncGenerator[StreamPiece]:
    """Any async iterable of text as a provider's stream: a TextDelta per piece, then Finished."""
    async for text in texts:
        if text:
            yield TextDelta(text)
    yield Finished("stop")


class AnswerStreams:
    """The answers an app streams: created once per app (in its lifespan, in the running loop) and
    closed with it. `prefix` is where the routes are mounted (the events and stop URLs start with it);
    `assets`, the static files `head()` links with their versions (default: `STATIC_DIR` under
    `{prefix}/static`, as the plugin serves them)."""

    def __init__(
        self,
        *,
        prefix: str = "/folyam",
        settings: Settings | None = None,
        env: jinja2.Environment | None = None,
        event_log: EventLog | None = None,
        record: Callable[[EndedAnswer], Awaitable[None]] | None = None,
        assets: StaticAssets | None = None,
    ) -> None:
        self._prefix = prefix.rstrip("/")
        # What `head()` links, each file with its version: Folyam's static files under the prefix.
        assets = assets or StaticAssets(STATIC_DIR, f"{self._prefix}/static")
        self._head = StreamAssets(f"{self._prefix}/static", assets.versions())
        self._settings = settings or Settings()
        self._env = env or make_environment()
        self._markdown = MarkdownPipeline(self._env)
        self._endings = PlainEndings(self._env)
        self._own_log = event_log is None
        self._log = event_log or MemoryEventLog()
        self._record = record
        self._answers: dict[str, Generation] = {}
        self._recording: set[asyncio.Task[None]] = set()
        self._expiries: dict[str, asyncio.TimerHandle] = {}

    def start(
        self,
        source: AnswerSource,
        *,
        owner: str,
        messages: Sequence[ChatMessage] = (),
        model: str | None = None,
    ) -> StreamedAnswer:
        """Start streaming an answer that belongs to `owner`: from an async iterable of text, or from a
        `Provider` asked `messages`. It runs on its own, whoever reads it."""
        answer_id = secrets.token_urlsafe(16)
        pieces: Callable[[BetweenReads], AsyncGenerator[StreamPiece]]
        if isinstance(source, AsyncIterable):
            texts: AsyncIterable[str] = source
            model_name = model or "–"

            def pieces(_: BetweenReads) -> AsyncGenerator[StreamPiece]:
                return text_pieces(texts)
        else:
            provider: Provider = source
            model_name = model or provider.model
            max_tokens = self._settings.max_output_tokens

            def pieces(between_reads: BetweenReads) -> AsyncGenerator[StreamPiece]:
                return provider.stream(messages, max_tokens=max_tokens, model=model, between_reads=between_reads)

        record = ExchangeRecord(
            id=answer_id,
            conversation_id="",
            session_id=owner,
            request_id="",
            question="",
            answer="",
            status="running",
            model=model_name,
            created_at=datetime.now(UTC),
        )
        generation = Generation(
            id=answer_id,
            session_id=owner,
            conversation_id="",
            query="",
            record=record,
            slots={},
            renderer=self._markdown.renderer(),
            reasoning_renderer=self._markdown.renderer(),
        )
        start_run(
            generation,
            pieces,
            event_log=self._log,
            fragments=AnswerFragments(self._endings, answer_id),
            settings=self._settings,
            model=model_name,
            record=self._ended,
            recording=self._recording,
        )
        self._answers[answer_id] = generation
        return StreamedAnswer(answer_id, self.events_url(answer_id), self.stop_url(answer_id), self._shell(generation))

    def events_url(self, answer_id: str) -> str:
        return f"{self._prefix}/answers/{answer_id}/events"

    def stop_url(self, answer_id: str) -> str:
        return f"{self._prefix}/answers/{answer_id}/stop"

    def head(self) -> Markup:
        """The <head> lines a page with a streamed answer needs (htmx, its SSE extension, the styles)."""
        return render_component(self._env, self._head)

    def owner(self, answer_id: str) -> str | None:
        """Who started the answer, while it is kept; None for an unknown (or forgotten) one."""
        generation = self._answers.get(answer_id)
        return generation.session_id if generation is not None else None

    def owned_by(self, answer_id: str, owner: str) -> bool:
        """Whether `owner` started the answer (compared in constant time: owner ids are secrets)."""
        started_by = self.owner(answer_id)
        return started_by is not None and hmac.compare_digest(started_by.encode(), owner.encode())

    def shell(self, answer_id: str) -> Markup | None:
        """The answer as it stands, for a page (re)loaded while it runs or after: it resumes streaming
        after the events already shown."""
        generation = self._answers.get(answer_id)
        return self._shell(generation) if generation is not None else None

    def events(self, answer_id: str, cursor: int) -> AsyncIterator[bytes] | None:
        """The answer's SSE frames after `cursor`, replayed then followed to its `done`; None for an
        unknown answer."""
        if answer_id not in self._answers:
            return None
        return follow_events(self._log, answer_id, cursor, keepalive=self._settings.keepalive_interval)

    def stop(self, answer_id: str) -> bool:
        """Stop a running answer (it ends with what arrived, a notice and its timing). False if unknown."""
        generation = self._answers.get(answer_id)
        if generation is None:
            return False
        generation.stop()
        return True

    async def aclose(self) -> None:
        """End every running answer (with a notice), wait for their endings, drop everything."""
        running = [g for g in self._answers.values() if g.running and g.task is not None]
        for generation in running:
            generation.stop("shutdown")
        await asyncio.gather(*(g.task for g in running if g.task is not None), return_exceptions=True)
        await asyncio.sleep(0)  # the done callbacks schedule the endings
        if self._recording:
            await asyncio.gather(*self._recording, return_exceptions=True)
        for answer_id in list(self._answers):
            self._forget(answer_id)
        if self._own_log:
            await self._log.aclose()

    def _shell(self, generation: Generation) -> Markup:
        answer: Answer = generation.answer()
        if answer.events_url is not None:
            after = f"?after={generation.last_seq}" if generation.last_seq else ""
            answer = dataclasses.replace(answer, events_url=self.events_url(generation.id) + after)
        return render_component(self._env, answer)

    async def _ended(self, generation: Generation, run: GenerationRun) -> None:
        """The host's record first (if any), then `done`; the answer is forgotten after the retention."""
        outcome = generation.outcome
        try:
            if self._record is not None and outcome is not None:
                await self._record(
                    EndedAnswer(
                        id=generation.id,
                        owner=generation.session_id,
                        text="".join(generation.text),
                        status=outcome.status,
                        notice=outcome.notice,
                        timing=outcome.timing,
                        reasoning="".join(generation.reasoning) or None,
                        refused=generation.refused,
                    )
                )
        except Exception:
            logger.exception("answer %s: recording it failed", generation.id)
        finally:
            run.end_stream()
            with contextlib.suppress(Exception):
                await self._log.flush(generation.id)
            loop = asyncio.get_running_loop()
            self._expiries[generation.id] = loop.call_later(self._settings.retention, self._forget, generation.id)

    def _forget(self, answer_id: str) -> None:
        expiry = self._expiries.pop(answer_id, None)
        if expiry is not None:
            expiry.cancel()
        if self._answers.pop(answer_id, None) is not None:
            self._log.forget(answer_id)
