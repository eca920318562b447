from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

from markupsafe import Markup, escape

from components import make_environment
from folyam.coordination import LocalCoordination
from folyam.event_log import Event, MemoryEventLog
from folyam.generations import Generation, Generations
from folyam.markdown import MarkdownPipeline
from folyam.providers import ChatMessage, StreamPiece, TextDelta, UpstreamBroken
from folyam.rendering import RenderUpdate
from folyam.settings import Settings
from folyam.store.sql import SqlStore
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


@contextlib.asynccontextmanager
async def local_generations(provider: ScriptedProvider, **settings: object) -> AsyncIterator[Generations]:
    """Generations in one process, with a SQLite store of its own and the in-memory event log."""
    options = dataclasses.replace(Settings(), **settings)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as data:
        store = SqlStore(f"sqlite:///{data}/test.db")
        await store.migrate()
        generations = Generations(
            provider=provider,
            event_log=MemoryEventLog(),
            store=store,
            coordination=LocalCoordination({"session": 3, "client": 6, "server": 10}, 30),
            env=make_environment(),
            settings=options,
            renderer_factory=EchoRenderer,
            render_markdown=MarkdownPipeline(make_environment()).render,
        )
        try:
            yield generations
        finally:
            await generations.aclose()
            await store.aclose()


async def start(generations: Generations) -> Generation:
    started = await generations.start(
        session_id="session", conversation_id="conversation", request_id="request", query="question", client="c"
    )
    assert started.generation is not None
    return started.generation


async def run(provider: ScriptedProvider, **settings: object) -> list[tuple[float, Frame]]:
    """Start one generation and return its frames with the time each was appended."""
    async with local_generations(provider, **settings) as generations:
        return await _timed_frames(generations)


async def _timed_frames(generations: Generations) -> list[tuple[float, Frame]]:
    log = generations.event_log
    generation = await start(generations)
    loop = asyncio.get_running_loop()
    begun = loop.time()
    timed = []
    async for batch in log.follow(generation.id, 0, idle_timeout=60):
        for event in batch:
            [frame] = parse_frames(event.frame.decode())
            timed.append((loop.time() - begun, frame))
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


async def test_shutdown_ends_running_answers_with_a_notice_and_records_them() -> None:
    provider = ScriptedProvider([(0, TextDelta("partial")), (60, TextDelta("never"))])
    async with local_generations(provider) as generations:
        generation = await start(generations)
        await asyncio.sleep(0.05)
        await generations.aclose()
        log = generations.event_log
        frames = [parse_frames(e.frame.decode())[0] async for batch in log.follow(generation.id, 0, 1) for e in batch]
        assert answer_html(frames) == "partial"
        assert "The server is shutting down" in frames[-2].data
        assert frames[-1].event == "done"
        [record] = await generations.store.exchanges("session", "conversation") or []
        assert (record.status, record.answer, record.notice_title) == (
            "interrupted",
            "partial",
            "The answer was stopped",
        )


async def test_a_stop_before_the_run_started_still_ends_the_answer() -> None:
    async with local_generations(ScriptedProvider([(0, TextDelta("never seen"))])) as generations:
        generation = await start(generations)
        generations.stop_local(generation.id)  # same tick: the task has not taken a step yet
        log = generations.event_log
        frames = [parse_frames(e.frame.decode())[0] async for batch in log.follow(generation.id, 0, 1) for e in batch]
        assert "Stopped" in frames[-2].data
        assert frames[-1].event == "done"
        assert not generation.running
        await generations.aclose()
        [record] = await generations.store.exchanges("session", "conversation") or []
        assert record.status == "stopped"


async def test_a_stream_left_open_by_a_lost_process_is_ended_from_what_the_store_says() -> None:
    async with local_generations(ScriptedProvider([])) as generations:
        store, log = generations.store, generations.event_log
        for exchange_id, request_id in [("ended-xxxx", "r1"), ("running-xx", "r2")]:
            await store.start_exchange(
                exchange_id=exchange_id, session_id="s", conversation_id="c", request_id=request_id,
                question="q", model="m",
            )  # fmt: skip
            log.open(exchange_id)  # its process wrote an event, then died before closing the stream
            log.append(exchange_id, Event(1, b"id: 1\r\ndata: x\r\n\r\n"))
        # One ended normally (its outcome is in the store), one was cut off while running.
        await store.finish_exchange("ended-xxxx", answer="All *done*.", status="finished", notice=None, timing=None)
        for exchange in await store.exchanges("s", "c") or []:
            assert await generations.end_if_abandoned(exchange)
            assert not await generations.end_if_abandoned(exchange)  # once only
        ended = [parse_frames(e.frame.decode())[0] async for batch in log.follow("ended-xxxx", 1, 1) for e in batch]
        assert "All <em>done</em>." in ended[0].data and "stopped while answering" not in ended[0].data
        assert [f.id for f in ended] == ["2", "3"] and ended[-1].event == "done"
        cut = [parse_frames(e.frame.decode())[0] async for batch in log.follow("running-xx", 1, 1) for e in batch]
        assert "The server stopped while answering" in cut[0].data and cut[-1].event == "done"
        records = {r.id: r for r in await store.exchanges("s", "c") or []}
        assert (records["ended-xxxx"].status, records["running-xx"].status) == ("finished", "interrupted")
