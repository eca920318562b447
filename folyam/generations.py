"""Generations: server-owned tasks that read a provider's stream, render it, and append SSE events.

A generation never waits for a browser. Deltas are coalesced into at most one event per flush
interval (the first goes out at once, so time to first token is not delayed); the last events are the
final fragment (error notice if any, then timing) and a named `done` event that closes the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import jinja2
from markupsafe import Markup

from components import ErrorNotice, Partial, SwapStyle, Timing, render_component
from components.answer import body_id, status_id, tail_id
from folyam.event_log import Event, EventLog
from folyam.providers import ChatMessage, Provider, ProviderError, StreamPiece, TextDelta, Usage
from folyam.rendering import AnswerRenderer, RenderUpdate
from folyam.settings import Settings
from folyam.sse import encode_event

__all__ = ["DONE_EVENT", "Generation", "Generations"]

DONE_EVENT = "done"

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Generation:
    id: str
    conversation_id: str
    query: str
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def events_url(self) -> str:
        return f"/generations/{self.id}/events"

    @property
    def finished(self) -> bool:
        return self.task is not None and self.task.done()


class Generations:
    """Starts generations and keeps track of them; created in the app's lifespan."""

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

    def start(self, conversation_id: str, query: str) -> Generation:
        generation = Generation(id=secrets.token_urlsafe(16), conversation_id=conversation_id, query=query)
        self._event_log.open(generation.id)
        messages: list[ChatMessage] = [{"role": "user", "content": query}]
        pieces = self._provider.stream(messages, max_tokens=self._settings.max_output_tokens)
        run = _Run(generation.id, self._event_log, self._env, self._settings, self._renderer_factory())
        generation.task = asyncio.create_task(
            run.execute(pieces, model=self._provider.model), name=f"generation-{generation.id}"
        )
        self._generations[generation.id] = generation
        return generation

    def get(self, generation_id: str) -> Generation | None:
        return self._generations.get(generation_id)

    async def aclose(self) -> None:
        tasks = [g.task for g in self._generations.values() if g.task is not None and not g.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Run:
    """One generation's run: the coalescing clock, the renderer and the event sequence."""

    def __init__(
        self,
        generation_id: str,
        event_log: EventLog,
        env: jinja2.Environment,
        settings: Settings,
        renderer: AnswerRenderer,
    ) -> None:
        self._id = generation_id
        self._log = event_log
        self._env = env
        self._settings = settings
        self._renderer = renderer
        self._loop = asyncio.get_running_loop()
        self._seq = 0
        self._pending: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._next_flush_at = 0.0  # in the past: the first delta is flushed at once
        self._started_at = self._loop.time()
        self._first_token_at: float | None = None
        self._chunks = 0
        self._usage: Usage | None = None

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
            notice = ErrorNotice("The answer was stopped", "The server is shutting down.")
            raise
        except Exception:
            logger.exception("generation %s failed", self._id)
            notice = ErrorNotice("Something went wrong", "An unexpected error ended the answer.")
        finally:
            self._finish(notice, model)

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
        self._emit(self._partial(status_id(self._id), "innerHTML", status))
        self._emit("", DONE_EVENT)
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
        """One event for one update, so the appended block and the new tail land in the same swap."""
        partials = []
        if update.replace is not None:
            partials.append(self._partial(body_id(self._id), "innerHTML", update.replace))
        if update.append:
            partials.append(self._partial(body_id(self._id), "beforeend", update.append))
        if update.tail is not None:
            partials.append(self._partial(tail_id(self._id), "innerHTML", update.tail))
        if partials:
            self._emit(Markup().join(partials))

    def _partial(self, target_id: str, swap: SwapStyle, content: Markup) -> Markup:
        return render_component(self._env, Partial(target_id=target_id, swap=swap, content=content))

    def _emit(self, data: str, event: str | None = None) -> None:
        self._seq += 1
        self._log.append(self._id, Event(self._seq, encode_event(self._seq, data, event)))
