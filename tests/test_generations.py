from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

import pytest
from markupsafe import Markup, escape

from folyam.components import make_environment
from folyam.coordination import LocalCoordination
from folyam.event_log import Event, MemoryEventLog
from folyam.fragments import Endings
from folyam.generations import Generation, Generations
from folyam.markdown import MarkdownPipeline
from folyam.providers import (
    BetweenReads,
    ChatMessage,
    Finished,
    ReasoningDelta,
    RefusalDelta,
    StreamPiece,
    TextDelta,
    UpstreamBroken,
    UpstreamEndedEarly,
)
from folyam.rendering import RenderUpdate
from folyam.settings import Settings
from folyam.store import ConversationBusy
from folyam.store.sql import SqlStore
from tests.support.sse import Frame, answer_html, parse_frames


class ScriptedProvider:
    """A provider that plays (delay, piece) steps; a piece may be an exception to raise."""

    model = "scripted"
    is_demo = False

    def __init__(self, steps: list[tuple[float, StreamPiece | Exception]]) -> None:
        self.steps = steps
        self.asked: list[tuple[str | None, list[ChatMessage]]] = []  # each stream's model and messages

    async def list_models(self) -> list[str]:
        return [self.model]

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        model: str | None = None,
        between_reads: BetweenReads | None = None,
    ) -> AsyncGenerator[StreamPiece]:
        self.asked.append((model, list(messages)))
        for delay, piece in self.steps:
            if delay:
                await asyncio.sleep(delay)
            if isinstance(piece, Exception):
                raise piece
            yield piece

    async def aclose(self) -> None:
        return None


class BufferedUpstream(ScriptedProvider):
    """Reads like a socket: pieces arrive at their times (seconds from the start) into a buffer, a read
    takes all that has arrived (or waits for the next), and `between_reads` is awaited between reads."""

    def __init__(self, arrivals: list[tuple[float, StreamPiece]]) -> None:
        super().__init__([])
        self.arrivals = arrivals
        self.reads = 0

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        model: str | None = None,
        between_reads: BetweenReads | None = None,
    ) -> AsyncGenerator[StreamPiece]:
        loop = asyncio.get_running_loop()
        begun, index = loop.time(), 0
        while index < len(self.arrivals):
            if index and between_reads is not None:
                await between_reads()
            await asyncio.sleep(max(0.0, begun + self.arrivals[index][0] - loop.time()))
            self.reads += 1
            now = loop.time() - begun
            while index < len(self.arrivals) and self.arrivals[index][0] <= now:
                yield self.arrivals[index][1]
                index += 1


class EchoRenderer:
    """Escaped text, appended as it comes: keeps these tests about timing, not markdown."""

    def feed(self, text: str) -> RenderUpdate:
        return RenderUpdate(append=escape(text))

    def finish(self) -> RenderUpdate:
        return RenderUpdate(append=Markup())

    def tail_html(self) -> Markup:
        return Markup()


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
            endings=Endings(make_environment(), lambda session_id: f"csrf-{session_id}"),
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
    steps: list[tuple[float, StreamPiece | Exception]] = [
        (0.001 if n == 1 else 0, TextDelta(f"t{n} ")) for n in range(200)
    ]
    timed = await run(ScriptedProvider(steps), flush_interval=0.05)
    frames = [frame for _, frame in timed]
    body_frames = [f for f in frames if "-body" in f.data]
    assert answer_html(body_frames[:1]) == "t0 "  # not held back for coalescing
    assert len(body_frames) == 2  # everything else arrived within one flush interval
    assert answer_html(frames) == "".join(f"t{n} " for n in range(200))


async def test_pieces_read_together_go_out_together() -> None:
    # Each flush waits until the task has handled what it has read, not just the first piece of it.
    steps: list[tuple[float, StreamPiece | Exception]] = [(0, TextDelta(f"t{n} ")) for n in range(50)]
    timed = await run(ScriptedProvider(steps), flush_interval=0.05)
    body_frames = [frame for _, frame in timed if "-body" in frame.data]
    assert len(body_frames) == 1
    assert answer_html(body_frames) == "".join(f"t{n} " for n in range(50))


async def test_a_paced_provider_reads_once_per_flush_not_once_per_token() -> None:
    arrivals: list[tuple[float, StreamPiece]] = [(n * 0.01, TextDelta(f"t{n} ")) for n in range(100)]
    provider = BufferedUpstream(arrivals)
    timed = await run(provider, flush_interval=0.05, busy_flush_interval=0.0)
    body = [(at, frame) for at, frame in timed if "-body" in frame.data]
    assert answer_html([frame for _, frame in body]) == "".join(f"t{n} " for n in range(100))
    assert answer_html([body[0][1]]) == "t0 "  # the first at once, alone
    # One second of tokens every 10 ms: about 20 reads of 5 tokens, not 100 reads of one.
    assert provider.reads <= 25 and len(body) <= 25
    assert min(b - a for (a, _), (b, _) in itertools.pairwise(body[:-1])) >= 0.04


async def test_the_flush_interval_grows_with_the_answers_running() -> None:
    slow = [(0, TextDelta("a")), (60.0, TextDelta("b"))]
    async with local_generations(
        ScriptedProvider(slow), flush_interval=0.03, busy_flush_interval=0.1, busy_answers=4, max_running=10
    ) as generations:
        assert generations.flush_interval() == 0.03
        for n in range(4):
            await generations.start(
                session_id=f"s{n}", conversation_id=f"c{n}", request_id=f"r{n}", query="q", client=f"c{n}"
            )
            assert generations.flush_interval() == pytest.approx(0.03 + (0.1 - 0.03) * (n + 1) / 4)


async def test_the_answers_of_a_process_flush_on_the_same_clock_ticks() -> None:
    # Started 13 ms apart, two answers still flush together: the loop wakes once for both.
    steps: list[tuple[float, StreamPiece | Exception]] = [(0.005, TextDelta("x")) for _ in range(100)]
    loop = asyncio.get_running_loop()

    async def body_times(generations: Generations, generation: Generation) -> list[float]:
        times = []
        async for batch in generations.event_log.follow(generation.id, 0, idle_timeout=60):
            times += [loop.time() for event in batch if b"-body" in event.frame]
        return times[1:-1]  # not the first delta (at once) nor the end of the answer

    async with local_generations(ScriptedProvider(steps), flush_interval=0.04, busy_flush_interval=0.0) as generations:
        first = await start(generations)
        await asyncio.sleep(0.013)
        started = await generations.start(
            session_id="other", conversation_id="c2", request_id="r2", query="q", client="c2"
        )
        assert started.generation is not None
        times = [
            t
            for ts in await asyncio.gather(body_times(generations, first), body_times(generations, started.generation))
            for t in ts
        ]
    on_tick = [t for t in times if t % 0.025 < 0.008]
    assert len(times) >= 20 and len(on_tick) >= 0.8 * len(times)


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
            if exchange_id == "ended-xxxx":  # one ended normally (its outcome is in the store)
                await store.finish_exchange(
                    exchange_id, answer="All *done*.", status="finished", notice=None, timing=None
                )
        # ... and one was cut off while running.
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


# -- Model, system prompt, one question at a time, replacing ---------------------------------------------


async def ask(
    generations: Generations, request: str, *, conversation: str = "conversation", **options: str | None
) -> Generation:
    started = await generations.start(
        session_id="session", conversation_id=conversation, request_id=request, query=f"question {request}",
        client="c", **options,
    )  # fmt: skip
    assert started.generation is not None
    return started.generation


async def to_the_end(generations: Generations, generation: Generation) -> list[Frame]:
    log = generations.event_log
    return [parse_frames(e.frame.decode())[0] async for batch in log.follow(generation.id, 0, 5) for e in batch]


async def test_the_system_prompt_goes_first_then_the_history_then_the_question() -> None:
    provider = ScriptedProvider([(0, TextDelta("answer"))])
    async with local_generations(provider) as generations:
        first = await ask(generations, "r1", model="big", system_prompt="Answer in French.")
        await to_the_end(generations, first)
        second = await ask(generations, "r2", system_prompt="   ")  # blank: no system message, default model
        frames = await to_the_end(generations, second)
    assert provider.asked == [
        ("big", [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "question r1"}]),
        ("scripted", [
            {"role": "user", "content": "question r1"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": "question r2"},
        ]),
    ]  # fmt: skip
    assert "scripted" in frames[-2].data  # the timing names the model that answered


async def test_a_question_asked_the_moment_the_last_one_is_done_finds_it_recorded() -> None:
    # `done` goes out once the outcome is in the store: the follow-up is not busy, and has its context.
    provider = ScriptedProvider([(0, TextDelta("answer"))])
    async with local_generations(provider) as generations:
        for n in range(5):
            frames = await to_the_end(generations, await ask(generations, f"r{n}"))
            assert frames[-1].event == "done"
    assert [len(messages) for _, messages in provider.asked] == [1, 3, 5, 7, 9]


async def test_a_busy_conversation_refuses_a_second_question_and_gives_its_slot_back() -> None:
    provider = ScriptedProvider([(0, TextDelta("slow")), (60, TextDelta("never"))])
    async with local_generations(provider) as generations:  # three running answers per session
        running = await ask(generations, "r1")
        for _ in range(3):
            with pytest.raises(ConversationBusy) as busy:
                await ask(generations, "r2")
            assert busy.value.exchange_id == running.id
        again = await generations.start(
            session_id="session", conversation_id="conversation", request_id="r1", query="re-sent", client="c"
        )
        assert again.generation is running  # a re-sent question still finds its own answer
        # Had a refusal kept its slot, these would be refused too.
        await ask(generations, "r3", conversation="another")
        await ask(generations, "r4", conversation="a-third")


async def test_an_answer_whose_process_died_does_not_hold_the_conversation() -> None:
    async with local_generations(ScriptedProvider([(0, TextDelta("answer"))])) as generations:
        # Recorded as running by a process that is gone (no lease, no stream).
        await generations.store.start_exchange(
            exchange_id="left-over-1", session_id="session", conversation_id="conversation", request_id="old",
            question="q", model="m",
        )  # fmt: skip
        await to_the_end(generations, await ask(generations, "r1"))
        records = await generations.store.exchanges("session", "conversation") or []
        assert [(r.id, r.status) for r in records][:1] == [("left-over-1", "interrupted")]
        assert records[1].status == "finished"


async def test_a_question_that_replaces_exchanges_drops_their_streams() -> None:
    provider = ScriptedProvider([(0, TextDelta("answer"))])
    async with local_generations(provider) as generations:
        log = generations.event_log
        ids = []
        for n in range(3):
            generation = await ask(generations, f"r{n}")
            await to_the_end(generations, generation)
            ids.append(generation.id)
        started = await generations.start(
            session_id="session", conversation_id="conversation", request_id="again", query="question r1 edited",
            client="c", replaces=ids[1],
        )  # fmt: skip
        assert started.replaced == ids[1:] and started.generation is not None
        assert [await log.state(i) for i in ids] == ["closed", "missing", "missing"]
        await to_the_end(generations, started.generation)
        assert provider.asked[-1][1] == [
            {"role": "user", "content": "question r0"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": "question r1 edited"},
        ]
        truncated = await generations.store.truncate("session", "conversation", ids[0])
        assert truncated == [ids[0], started.generation.id]
        generations.forget(truncated)
        assert await log.state(ids[0]) == "missing"


# -- Thinking, refusals, cut-offs ------------------------------------------------------------------------


def _steps(*pieces: StreamPiece | Exception) -> list[tuple[float, StreamPiece | Exception]]:
    return [(0.01, piece) for piece in pieces]


async def test_thinking_goes_to_its_own_block_which_closes_as_the_answer_starts() -> None:
    provider = ScriptedProvider(
        _steps(ReasoningDelta("Let me "), ReasoningDelta("think."), TextDelta("The "), TextDelta("answer."))
    )
    async with local_generations(provider, flush_interval=0) as generations:
        first = await ask(generations, "r1")
        frames = await to_the_end(generations, first)
        await to_the_end(generations, await ask(generations, "r2"))
        [record, _] = await generations.store.exchanges("session", "conversation") or []
    assert answer_html(frames) == "The answer."
    assert answer_html(frames, reasoning=True) == "Let me think."
    data = [f.data for f in frames]
    opened = next(i for i, d in enumerate(data) if "-thinking" in d and "<details" in d)
    assert '<details class="answer__thinking" open>' in data[opened] and "Thinking…" in data[opened]
    closing = next(i for i, d in enumerate(data) if "data-closes" in d)
    first_text = next(i for i, d in enumerate(data) if f"#answer-{first.id}-body" in d)
    assert opened < closing < first_text
    assert f'hx-target="#answer-{first.id}-thinking-summary" hx-swap="outerHTML"' in data[closing]
    assert "Thought for" in data[closing]
    # Never in the answer, its Copy source, or the history sent with the next question.
    assert "think" not in frames[-2].data.split("answer__source")[1]
    assert (record.answer, record.reasoning) == ("The answer.", "Let me think.")
    assert provider.asked[-1][1][1] == {"role": "assistant", "content": "The answer."}
    assert record.timing is not None and record.timing["thinking_ms"] > 0 and record.timing["answering_ms"] > 0
    assert "Thinking</dt>" in frames[-2].data and "Answering</dt>" in frames[-2].data


async def test_a_reload_while_thinking_shows_the_block_open_and_after_it_closed() -> None:
    provider = ScriptedProvider([(0, ReasoningDelta("hmm")), (0.3, TextDelta("yes")), (60, TextDelta("never"))])
    async with local_generations(provider, flush_interval=0) as generations:
        generation = await start(generations)
        await asyncio.sleep(0.1)
        thinking = generation.answer().thinking
        assert thinking is not None and thinking.open and thinking.seconds is None
        assert str(thinking.body) == "hmm"
        await asyncio.sleep(0.4)
        thinking = generation.answer().thinking
        assert thinking is not None and not thinking.open and thinking.seconds is not None
        generations.stop_local(generation.id)


async def test_a_refusal_is_the_answer_styled_as_one() -> None:
    provider = ScriptedProvider(_steps(RefusalDelta("I can't "), RefusalDelta("help with that.")))
    async with local_generations(provider, flush_interval=0) as generations:
        generation = await start(generations)
        frames = await to_the_end(generations, generation)
        [record] = await generations.store.exchanges("session", "conversation") or []
    assert answer_html(frames) == "I can&#39;t help with that."
    labels = [f for f in frames if 'hx-swap="beforebegin"' in f.data]
    assert len(labels) == 1 and "The model declined to answer" in labels[0].data
    assert (record.answer, record.refused, record.status) == ("I can't help with that.", True, "finished")


@pytest.mark.parametrize(
    ("ending", "status", "title", "tone"),
    [
        (Finished("length"), "finished", "The answer reached the model&#39;s output limit", "warning"),
        (Finished("content_filter"), "finished", "The provider&#39;s content filter stopped the answer", "warning"),
        (UpstreamEndedEarly("The stream ended early."), "failed", "The model server ended the answer early", "error"),
        (Finished("stop"), "finished", None, None),
    ],
)
async def test_a_cut_off_answer_keeps_what_arrived_and_says_why(
    ending: StreamPiece | Exception, status: str, title: str | None, tone: str | None
) -> None:
    provider = ScriptedProvider(_steps(TextDelta("kept"), ending))
    async with local_generations(provider, flush_interval=0) as generations:
        frames = await to_the_end(generations, await start(generations))
        [record] = await generations.store.exchanges("session", "conversation") or []
    assert answer_html(frames) == "kept" and record.answer == "kept" and record.status == status
    if title is None:
        assert "notice" not in frames[-2].data and record.notice_title is None
        return
    assert title in frames[-2].data and f"notice--{tone}" in frames[-2].data
    assert ("Retry" if status == "failed" else "Regenerate") in frames[-2].data
    endings = Endings(make_environment(), lambda session_id: "t")
    notice = endings.of_record(record).notice
    assert notice is not None and notice.tone == tone


async def test_thinking_without_an_answer_does_not_look_finished_and_fine() -> None:
    provider = ScriptedProvider(_steps(ReasoningDelta("Only thoughts.")))
    async with local_generations(provider, flush_interval=0) as generations:
        frames = await to_the_end(generations, await start(generations))
    assert answer_html(frames) == "" and answer_html(frames, reasoning=True) == "Only thoughts."
    assert "The model gave no answer" in frames[-2].data and "notice--warning" in frames[-2].data
    summary = next(f.data for f in frames if "Thought for" in f.data)
    assert "data-closes" not in summary  # thinking is all there is: the block stays open


async def test_without_usage_the_timing_says_tokens_are_estimated() -> None:
    frames = [f for _, f in await run(ScriptedProvider(_steps(TextDelta("a"))), flush_interval=0)]
    assert "≈1 (estimated)" in frames[-2].data


async def test_a_piece_of_several_chunks_counts_them_all() -> None:
    # A provider hands a read's text over as one piece; the timing counts the upstream's chunks in it.
    steps = _steps(ReasoningDelta("Hm, ", 2), TextDelta("one two three", 3), TextDelta(" four"))
    frames = [f for _, f in await run(ScriptedProvider(steps), flush_interval=0)]
    assert answer_html(frames) == "one two three four"
    assert "<dt>Chunks</dt><dd>6</dd>" in frames[-2].data and "≈6 (estimated)" in frames[-2].data


async def test_the_output_limit_counts_the_chunks_of_a_joined_piece() -> None:
    steps = _steps(TextDelta("a b ", 2), TextDelta("c ", 1), TextDelta("d e ", 2), TextDelta("f"))
    frames = [f for _, f in await run(ScriptedProvider(steps), flush_interval=0, max_output_tokens=4)]
    assert answer_html(frames) == "a b c "  # the piece that crosses the limit is not taken
    assert "The answer reached the output limit" in frames[-2].data
