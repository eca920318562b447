"""The generation runner: one answer's task, from the provider's stream to the event log.

It never waits for a browser. Deltas are coalesced into at most one event per flush interval (the first
goes out at once, so time to first token is not delayed; the interval grows with the number of answers
running, see `Generations.flush_interval`, and falls on the process's 25 ms flush clock, so the loop wakes
once for every answer due on a tick). A provider that reads a socket waits between its reads until
the next flush is due (`between_reads`): the tokens that arrive meanwhile are read, parsed and rendered
together, so an answer costs a few wake-ups per second instead of one per token. The last events are the
status fragment (a notice if the answer did not end normally or was cut short, then the timing) and, once
the outcome is in the store (`end_stream`), a named `done` event that closes the stream. An upstream that
sends more than the output limit is no longer read.

Thinking (reasoning pieces) goes through a renderer of its own into the thinking block above the answer;
the answer's first text ends it (its summary says how long it took, and the block closes). A refusal is
the answer's text, marked as a refusal once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from folyam.components import ErrorNotice, Timing
from folyam.event_log import Event, EventLog
from folyam.fragments import AnswerFragments, Ending
from folyam.providers import (
    CHARS_PER_TOKEN,
    BetweenReads,
    Finished,
    ProviderError,
    ReasoningDelta,
    RefusalDelta,
    StreamPiece,
    TextDelta,
    Usage,
)
from folyam.rendering import AnswerRenderer, RenderUpdate
from folyam.settings import Settings
from folyam.sse import encode_event
from folyam.store import ExchangeStatus

if TYPE_CHECKING:
    from folyam.generations import Generation

__all__ = ["CHARS_PER_TOKEN", "DONE_EVENT", "GenerationRun", "Outcome", "StopReason", "start_run"]

DONE_EVENT: Final = "done"
StopReason = Literal["stopped", "shutdown"]
# The flush clock's tick, s: flushes fall on its multiples.
_TICK: Final = 0.025

logger = logging.getLogger(__name__)

_NOTICES: Final[dict[StopReason, ErrorNotice]] = {
    "stopped": ErrorNotice("Stopped", "You stopped this answer; what arrived is kept.", "note"),
    "shutdown": ErrorNotice("The answer was stopped", "The server is shutting down."),
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an answer ended, as the store records it."""

    status: ExchangeStatus
    notice: ErrorNotice | None
    timing: dict[str, Any]


_STOPPED_STATUS: Final[dict[StopReason, ExchangeStatus]] = {"stopped": "stopped", "shutdown": "interrupted"}

# Finish reasons that cut an answer short: it still finished (what arrived is kept), with a warning.
_CUT_OFF: Final[dict[str, ErrorNotice]] = {
    "length": ErrorNotice(
        "The answer reached the model's output limit", "It is cut off there; what arrived is kept.", "warning"
    ),
    "content_filter": ErrorNotice(
        "The provider's content filter stopped the answer", "What arrived before it is kept.", "warning"
    ),
}
_ONLY_THINKING: Final = ErrorNotice("The model gave no answer", "It only sent its thinking, shown above.", "warning")


class _OutputLimitReached(Exception):
    """Raised inside the run when the upstream sends more than the output limit allows."""


class GenerationRun:
    """One generation's run: the coalescing clock, the renderer, the limits and the event sequence."""

    def __init__(
        self,
        generation: Generation,
        event_log: EventLog,
        fragments: AnswerFragments,
        settings: Settings,
        renderer: AnswerRenderer,
        flush_interval: Callable[[], float] | None = None,
    ) -> None:
        self._generation = generation
        self._id = generation.id
        self._log = event_log
        self._fragments = fragments
        self._settings = settings
        self._renderer = renderer
        self._interval = flush_interval or (lambda: settings.flush_interval)
        self._loop = asyncio.get_running_loop()
        self._pending: list[str] = []
        self._pending_reasoning: list[str] = []
        self._finish_reason: str | None = None
        self._timer: asyncio.Handle | None = None
        self._next_flush_at = 0.0  # in the past: the first delta is flushed at once
        self._started_at = self._loop.time()
        self._first_token_at: float | None = None  # the answer's first text
        self._first_reasoning_at: float | None = None
        self._thinking_ended_at: float | None = None
        self._chunks = 0
        self._chars = 0
        self._usage: Usage | None = None
        self._unsent_text: list[str] = []  # model text not yet sent along with an event (for the log)
        self._unsent_reasoning: list[str] = []  # and thinking

    async def execute(self, pieces: AsyncGenerator[StreamPiece], *, model: str) -> None:
        notice: ErrorNotice | None = None
        status: ExchangeStatus = "failed"
        try:
            async with contextlib.aclosing(pieces), asyncio.timeout(self._settings.generation_timeout):
                async for piece in pieces:
                    if isinstance(piece, TextDelta):
                        self._on_text(piece.text, piece.chunks)
                    elif isinstance(piece, ReasoningDelta):
                        self._on_reasoning(piece.text, piece.chunks)
                    elif isinstance(piece, RefusalDelta):
                        self._on_refusal(piece.text)
                    elif isinstance(piece, Usage):
                        self._usage = piece
                    elif isinstance(piece, Finished):
                        self._finish_reason = piece.reason
            status = "finished"
            notice = _CUT_OFF.get(self._finish_reason or "")
            if notice is None and self._first_token_at is None and self._first_reasoning_at is not None:
                notice = _ONLY_THINKING
        except ProviderError as exc:
            logger.warning("generation %s ended: %s (%s)", self._id, exc.title, exc.detail)
            notice = ErrorNotice(exc.title, str(exc))
        except _OutputLimitReached:
            limit = self._settings.max_output_tokens
            notice = ErrorNotice(
                "The answer reached the output limit",
                f"The model server sent more than the {limit:,}-token limit; the rest was not read.",
            )
        except TimeoutError:
            notice = ErrorNotice(
                "The answer took too long",
                f"It was ended after {self._settings.generation_timeout:g} seconds.",
            )
        except asyncio.CancelledError:
            reason = self._generation.stop_reason or "shutdown"
            notice, status = _NOTICES[reason], _STOPPED_STATUS[reason]
            if self._generation.stop_reason is None:
                raise  # cancelled by someone else: end the answer, then let the cancellation through
        except Exception:
            logger.exception("generation %s failed", self._id)
            notice = ErrorNotice("Something went wrong", "An unexpected error ended the answer.")
        finally:
            self._finish(notice, status, model)

    def end_if_unfinished(self, model: str) -> None:
        """For a task cancelled before its first step, which never ran its body."""
        if self._generation.finished_at is None:
            reason = self._generation.stop_reason or "shutdown"
            self._finish(_NOTICES[reason], _STOPPED_STATUS[reason], model)

    def _on_text(self, text: str, chunks: int = 1) -> None:
        if self._first_token_at is None:
            self._first_token_at = self._loop.time()
        self._count(text, chunks)
        self._pending.append(text)
        self._schedule()

    def _on_reasoning(self, text: str, chunks: int) -> None:
        if self._first_reasoning_at is None:
            self._first_reasoning_at = self._loop.time()
        self._count(text, chunks)
        self._pending_reasoning.append(text)
        self._schedule()

    def _on_refusal(self, text: str) -> None:
        if not self._generation.refused:
            self._generation.refused = True
            self._emit(self._fragments.refused())
        self._on_text(text)

    def _count(self, text: str, chunks: int) -> None:
        self._chunks += chunks
        self._chars += len(text)
        limit = self._settings.max_output_tokens
        if self._chunks > limit or self._chars > limit * CHARS_PER_TOKEN:
            raise _OutputLimitReached

    async def between_reads(self) -> None:
        """Awaited by the provider between two reads: a due flush goes out now, and the next read waits
        until the flush after it is due."""
        now = self._loop.time()
        if self._timer is not None and now >= self._next_flush_at:
            self._timer.cancel()
            self._flush()
        delay = self._next_flush_at - now
        if delay > 0:
            await asyncio.sleep(delay)

    def _schedule(self) -> None:
        if self._timer is not None:
            return  # a flush is already scheduled
        if self._loop.time() < self._next_flush_at:
            self._timer = self._loop.call_at(self._next_flush_at, self._flush)
        elif self._settings.flush_interval > 0:
            # Due: after the pieces already read (which follow without a real await), not before them.
            self._timer = self._loop.call_soon(self._flush)
        else:
            self._flush()  # no coalescing: one event per delta

    def _flush(self) -> None:
        self._timer = None
        if self._pending_reasoning:
            self._flush_reasoning()
        if not self._pending:
            return
        self._end_thinking(close=True)
        text = "".join(self._pending)
        self._pending.clear()
        self._generation.text.append(text)
        self._emit_update(self._renderer.feed(text), text)
        self._next_flush_at = self._next_tick()

    def _flush_reasoning(self) -> None:
        text = "".join(self._pending_reasoning)
        self._pending_reasoning.clear()
        generation = self._generation
        if not generation.reasoning:
            self._emit(self._fragments.thinking_started())
        generation.reasoning.append(text)
        self._unsent_reasoning.append(text)
        self._emit_reasoning(generation.reasoning_renderer.feed(text))
        self._next_flush_at = self._next_tick()

    def _next_tick(self) -> float:
        """When the next flush is due: one interval from now, rounded up to the process's flush clock, so
        every answer in a process flushes on the same ticks and the loop wakes once for all of them."""
        now, interval = self._loop.time(), self._interval()
        if interval <= 0:
            return now  # no coalescing
        return math.ceil((now + interval) / _TICK) * _TICK

    def _end_thinking(self, *, close: bool) -> None:
        """Once: the summary says how long the model thought; the block closes as the answer starts (it
        stays open when thinking is all there is)."""
        generation = self._generation
        if not generation.reasoning or self._thinking_ended_at is not None or self._first_reasoning_at is None:
            return
        self._thinking_ended_at = self._loop.time()
        generation.thinking_seconds = self._thinking_ended_at - self._first_reasoning_at
        generation.thinking_open = not close
        self._emit(self._fragments.thinking_ended(generation.thinking_seconds, close=close))

    def _finish(self, notice: ErrorNotice | None, status: ExchangeStatus, model: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._flush()
        if self._generation.reasoning:
            self._emit_reasoning(self._generation.reasoning_renderer.finish())
            self._end_thinking(close=False)
        self._emit_update(self._renderer.finish())
        timing = self._timing(model)
        generation = self._generation
        ending = Ending(
            self._id,
            generation.conversation_id,
            generation.session_id,
            status,
            notice,
            timing,
            "".join(generation.text),
        )
        html, partial = self._fragments.status(ending)
        self._generation.status = html
        self._generation.outcome = Outcome(status, notice, _timing_fields(timing))
        self._emit(partial)
        self._generation.finished_at = self._loop.time()

    def end_stream(self) -> None:
        """The last event, then the stream closes. Sent once the outcome is recorded: a browser that saw
        `done` and asks again at once finds the answer ended, and in the history."""
        self._emit("", DONE_EVENT)
        self._log.close(self._id)

    def _timing(self, model: str) -> Timing:
        """Timing and usage of the answer so far."""
        finished_at = self._loop.time()
        usage = self._usage
        tokens = usage.completion_tokens if usage is not None else self._chunks
        first = self._first_token_at
        thought = self._first_reasoning_at
        began = min(t for t in (first, thought, finished_at) if t is not None)
        streaming_seconds = finished_at - began
        thinking_ended = self._thinking_ended_at if self._thinking_ended_at is not None else finished_at
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
            first_reasoning_ms=(thought - self._started_at) * 1000 if thought is not None else None,
            thinking_ms=(thinking_ended - thought) * 1000 if thought is not None else None,
            answering_ms=(finished_at - first) * 1000 if thought is not None and first is not None else None,
        )

    def _emit_update(self, update: RenderUpdate, text: str = "") -> None:
        self._unsent_text.append(text)  # goes with the next event (a half-typed marker shows nothing yet)
        if not update:
            return
        generation = self._generation
        if update.replace is not None:
            generation.body = [update.replace]
        if update.append:
            generation.body.append(update.append)
        tail_only = update.replace is None and not update.append
        self._emit(self._fragments.update(update), replaces_tail=update.replaces_tail, tail_only=tail_only)

    def _emit_reasoning(self, update: RenderUpdate) -> None:
        # Never tail-only nor replacing the tail: replay compaction concerns the answer's tail alone.
        if not update:
            return
        generation = self._generation
        if update.replace is not None:
            generation.reasoning_body = [update.replace]
        if update.append:
            generation.reasoning_body.append(update.append)
        self._emit(self._fragments.update(update, reasoning=True))

    def _emit(
        self, data: str, event: str | None = None, *, replaces_tail: bool = False, tail_only: bool = False
    ) -> None:
        seq = self._generation.last_seq + 1
        text, reasoning = "".join(self._unsent_text), "".join(self._unsent_reasoning)
        self._unsent_text.clear()
        self._unsent_reasoning.clear()
        frame = encode_event(seq, data, event)
        self._log.append(self._id, Event(seq, frame, replaces_tail, tail_only), text, reasoning)
        self._generation.last_seq = seq


def _timing_fields(timing: Timing) -> dict[str, Any]:
    return {f.name: getattr(timing, f.name) for f in dataclasses.fields(timing)}


def start_run(
    generation: Generation,
    pieces: Callable[[BetweenReads], AsyncGenerator[StreamPiece]],
    *,
    event_log: EventLog,
    fragments: AnswerFragments,
    settings: Settings,
    model: str,
    record: Callable[[Generation, GenerationRun], Coroutine[Any, Any, None]],
    recording: set[asyncio.Task[None]],
    flush_interval: Callable[[], float] | None = None,
) -> None:
    """Run `generation` as a task of its own, reading `pieces(between_reads)` (a provider's stream, or
    any text adapted to one). However it ends, `record(generation, run)` runs next, in a task kept in
    `recording` until it is done; it stores the outcome wherever its caller keeps answers and ends the
    stream (`run.end_stream()`)."""
    event_log.open(generation.id)
    run = GenerationRun(generation, event_log, fragments, settings, generation.renderer, flush_interval)
    stream = pieces(run.between_reads)
    generation.task = asyncio.create_task(run.execute(stream, model=model), name=f"generation-{generation.id}")

    def ended(_: asyncio.Task[None]) -> None:
        # A task cancelled before its first step never runs its body: end the answer all the same.
        run.end_if_unfinished(model)
        task = asyncio.get_running_loop().create_task(record(generation, run))
        recording.add(task)
        task.add_done_callback(recording.discard)

    generation.task.add_done_callback(ended)
