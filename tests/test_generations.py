from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncGenerator, Sequence

from markupsafe import Markup, escape

from components import make_environment
from folyam.event_log import MemoryEventLog
from folyam.generations import Generations
from folyam.providers import ChatMessage, StreamPiece, TextDelta, UpstreamBroken
from folyam.rendering import RenderUpdate
from folyam.settings import Settings
from tests.support.sse import Frame, answer_html, parse_frames


class ScriptedProvider:
    """A provider that plays (delay, piece) steps; a piece may be an exception to raise."""

    model = "scripted"
    is_demo = False

    def __init__(self, steps: list[tuple[float, StreamPiece | Exception]]) -> None:
        self.steps = steps

    async def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int) -> AsyncGenerator[StreamPiece]:
        for delay, piece in self.steps:
            if delay:
                await asyncio.sleep(delay)
            if isinstance(piece, Exception):
                raise piece
            yield piece

    async def aclose(self) -> None:
        return None


class EchoRenderer:
    """Escaped text, appended as it comes: keeps these tests about timing, not markdown."""

    def feed(self, text: str) -> RenderUpdate:
        return RenderUpdate(append=escape(text))

    def finish(self) -> RenderUpdate:
        return RenderUpdate(append=Markup())


async def run(provider: ScriptedProvider, **settings: object) -> list[tuple[float, Frame]]:
    """Start one generation and return its frames with the time each was appended."""
    log = MemoryEventLog()
    generations = Generations(
        provider=provider,
        event_log=log,
        env=make_environment(),
        settings=dataclasses.replace(Settings(), **settings),  # type: ignore[arg-type]
        renderer_factory=EchoRenderer,
    )
    generation, _ = generations.start("session", "conversation", "request", "question")
    loop = asyncio.get_running_loop()
    start = loop.time()
    timed = []
    async for batch in log.follow(generation.id, 0, idle_timeout=60):
        for event in batch:
            [frame] = parse_frames(event.frame.decode())
            timed.append((loop.time() - start, frame))
    await generations.aclose()
    return timed


async def test_first_delta_goes_out_at_once_and_the_rest_are_coalesced() -> None:
    steps: list[tuple[float, StreamPiece | Exception]] = [(0, TextDelta(f"t{n} ")) for n in range(200)]
    timed = await run(ScriptedProvider(steps), flush_interval=0.05)
    frames = [frame for _, frame in timed]
    body_frames = [f for f in frames if "-body" in f.data]
    assert answer_html(body_frames[:1]) == "t0 "  # not held back for coalescing
    assert len(body_frames) == 2  # everything else arrived within one flush interval
    assert answer_html(frames) == "".join(f"t{n} " for n in range(200))


async def test_buffered_text_is_flushed_without_waiting_for_the_next_delta() -> None:
    steps: list[tuple[float, StreamPiece | Exception]] = [
        (0, TextDelta("a")),
        (0.001, TextDelta("b")),
        (0.5, TextDelta("c")),
    ]
    timed = await run(ScriptedProvider(steps), flush_interval=0.03)
    times = {answer_html([frame]): at for at, frame in timed if "-body" in frame.data}
    assert set(times) == {"a", "b", "c"}
    assert times["b"] < 0.3  # flushed by the timer, long before "c" arrived


async def test_at_most_one_event_per_flush_interval() -> None:
    steps: list[tuple[float, StreamPiece | Exception]] = [(0.002, TextDelta("x")) for _ in range(150)]
    timed = await run(ScriptedProvider(steps), flush_interval=0.04)
    body_times = [at for at, frame in timed if "-body" in frame.data]
    gaps = [b - a for a, b in itertools.pairwise(body_times)]
    # The timer never fires early; only the end of the answer flushes without waiting.
    assert min(gaps[:-1]) >= 0.03
    assert answer_html([f for _, f in timed]) == "x" * 150


async def test_a_provider_error_keeps_the_text_and_ends_with_an_error_then_done() -> None:
    steps: list[tuple[float, StreamPiece | Exception]] = [
        (0, TextDelta("kept ")),
        (0, UpstreamBroken("The connection to the model server broke off.")),
    ]
    frames = [f for _, f in await run(ScriptedProvider(steps), flush_interval=0)]
    assert answer_html(frames) == "kept "
    assert "The answer was cut off" in frames[-2].data and "broke off" in frames[-2].data
    assert frames[-1].event == "done"


async def test_an_unexpected_error_is_reported_without_details() -> None:
    steps: list[tuple[float, StreamPiece | Exception]] = [(0, RuntimeError("secret internals"))]
    frames = [f for _, f in await run(ScriptedProvider(steps))]
    assert "Something went wrong" in frames[-2].data
    assert "secret internals" not in frames[-2].data


async def test_the_generation_time_limit_ends_the_answer() -> None:
    steps: list[tuple[float, StreamPiece | Exception]] = [(0, TextDelta("slow")), (5, TextDelta("never"))]
    frames = [f for _, f in await run(ScriptedProvider(steps), generation_timeout=0.1)]
    assert answer_html(frames) == "slow"
    assert "The answer took too long" in frames[-2].data
    assert frames[-1].event == "done"


async def test_shutdown_ends_running_answers_with_a_notice() -> None:
    log = MemoryEventLog()
    provider = ScriptedProvider([(0, TextDelta("partial")), (60, TextDelta("never"))])
    generations = Generations(
        provider=provider, event_log=log, env=make_environment(), settings=Settings(), renderer_factory=EchoRenderer
    )
    generation, _ = generations.start("s", "c", "r", "q")
    await asyncio.sleep(0.05)
    await generations.aclose()
    frames = [parse_frames(e.frame.decode())[0] async for batch in log.follow(generation.id, 0, 1) for e in batch]
    assert answer_html(frames) == "partial"
    assert "The server is shutting down" in frames[-2].data
    assert frames[-1].event == "done"


async def test_a_stop_before_the_run_started_still_ends_the_answer() -> None:
    log = MemoryEventLog()
    provider = ScriptedProvider([(0, TextDelta("never seen"))])
    generations = Generations(
        provider=provider, event_log=log, env=make_environment(), settings=Settings(), renderer_factory=EchoRenderer
    )
    generation, _ = generations.start("s", "c", "r", "q")
    generations.stop(generation)  # same tick: the task has not taken a step yet
    frames = [parse_frames(e.frame.decode())[0] async for batch in log.follow(generation.id, 0, 1) for e in batch]
    assert "Stopped" in frames[-2].data
    assert frames[-1].event == "done"
    assert not generation.running
