"""folyam.streaming: a host's answers from any async text (or a Provider), run by Folyam's runner into
an event log, read back as the SSE frames a browser gets."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from folyam.components import make_environment
from folyam.markdown import MarkdownPipeline
from folyam.providers import Finished, TextDelta
from folyam.providers.demo import DemoProvider, demo_answer
from folyam.settings import Settings
from folyam.streaming import AnswerStreams, EndedAnswer, event_cursor, text_pieces
from tests.support.sse import Frame, answer_html, parse_frames

SETTINGS = Settings(flush_interval=0.0, busy_flush_interval=0.0)
PIPELINE = MarkdownPipeline(make_environment())


async def texts(*pieces: str, delay: float = 0.0) -> AsyncIterator[str]:
    for piece in pieces:
        await asyncio.sleep(delay)
        yield piece


async def read(streams: AnswerStreams, answer_id: str, cursor: int = 0) -> list[Frame]:
    frames = streams.events(answer_id, cursor)
    assert frames is not None
    raw = b"".join([frame async for frame in frames])
    return [frame for frame in parse_frames(raw.decode()) if not frame.comment]


@pytest.fixture
async def streams() -> AsyncIterator[AnswerStreams]:
    answers = AnswerStreams(prefix="/folyam", settings=SETTINGS)
    yield answers
    await answers.aclose()


async def test_text_pieces_are_text_deltas_then_finished() -> None:
    pieces = [piece async for piece in text_pieces(texts("a", "", "b"))]
    assert pieces == [TextDelta("a"), TextDelta("b"), Finished("stop")]


async def test_an_async_text_source_streams_to_the_one_shot_render_then_timing_and_done(
    streams: AnswerStreams,
) -> None:
    text = "# Title\n\nSome **bold** words.\n\n| a | b |\n| - | - |\n| 1 | 2 |\n"
    answer = streams.start(texts(*text.split(" ")[:1], *(" " + word for word in text.split(" ")[1:])), owner="me")

    assert answer.events_url == f"/folyam/answers/{answer.id}/events"
    assert answer.stop_url == f"/folyam/answers/{answer.id}/stop"
    assert f'hx-sse:connect="{answer.events_url}"' in answer.html
    assert str(answer) == answer.__html__() == str(answer.html)
    frames = await read(streams, answer.id)

    assert answer_html(frames) == str(PIPELINE.render(text))
    assert frames[-1].event == "done"
    assert '<dl class="timing">' in frames[-2].data
    # A host page has no composer nor announcer: the ending aims at the answer's own status alone.
    assert "#composer" not in frames[-2].data and "#announcer" not in frames[-2].data
    assert "answer__actions" not in frames[-2].data


async def test_model_text_is_rendered_and_sanitised_like_any_answer(streams: AnswerStreams) -> None:
    hostile = "<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) ![i](http://e/x.png)\n"
    answer = streams.start(texts(hostile), owner="me")
    body = answer_html(await read(streams, answer.id))

    assert body == str(PIPELINE.render(hostile))
    assert "<script" not in body and "<img" not in body and 'href="javascript' not in body
    assert "&lt;script&gt;" in body and 'class="image-link"' in body  # an image is a link showing its URL


async def test_a_replay_after_a_cursor_repeats_nothing_and_adds_up_to_the_whole(streams: AnswerStreams) -> None:
    answer = streams.start(texts(*[f"word{i} " for i in range(30)]), owner="me")
    whole = await read(streams, answer.id)
    cut = int(whole[len(whole) // 2].id or 0)

    rest = await read(streams, answer.id, cut)

    # Nothing at or before the cursor again (a replay may skip tail states a later one supersedes).
    assert rest and all(int(f.id or 0) > cut for f in rest) and rest[-1].event == "done"
    assert answer_html([f for f in whole if int(f.id or 0) <= cut] + rest) == answer_html(whole)


async def test_stop_ends_the_answer_with_what_arrived_a_notice_and_done(streams: AnswerStreams) -> None:
    async def endless() -> AsyncIterator[str]:
        while True:
            await asyncio.sleep(0.01)
            yield "more "

    answer = streams.start(endless(), owner="me")
    await asyncio.sleep(0.1)

    assert streams.stop(answer.id)
    frames = await asyncio.wait_for(read(streams, answer.id), 5)

    assert "more" in answer_html(frames)
    assert "Stopped" in frames[-2].data and '<dl class="timing">' in frames[-2].data
    assert frames[-1].event == "done"


async def test_a_provider_is_a_source_too(streams: AnswerStreams) -> None:
    provider = DemoProvider(first_token_delay=0.0, tokens_per_second=0.0)
    answer = streams.start(provider, owner="me", messages=[{"role": "user", "content": "rivers"}])
    frames = await read(streams, answer.id)

    assert answer_html(frames) == str(PIPELINE.render(demo_answer("rivers")))
    assert "<dd>folyam-demo</dd>" in frames[-2].data


async def test_the_host_records_the_ended_answer_before_done() -> None:
    recorded: list[EndedAnswer] = []
    answers = AnswerStreams(settings=SETTINGS, record=lambda ended: asyncio.sleep(0, recorded.append(ended)))
    try:
        answer = answers.start(texts("Hello ", "there."), owner="me")
        frames = await read(answers, answer.id)
        assert frames[-1].event == "done"
        assert len(recorded) == 1
        assert dataclasses.replace(recorded[0], timing={}) == EndedAnswer(
            id=answer.id,
            owner="me",
            text="Hello there.",
            status="finished",
            notice=None,
            timing={},
            reasoning=None,
            refused=False,
        )
        assert recorded[0].timing["chunks"] == 2
    finally:
        await answers.aclose()


async def test_ownership_and_unknown_answers(streams: AnswerStreams) -> None:
    answer = streams.start(texts("x"), owner="me")

    assert streams.owner(answer.id) == "me"
    assert streams.owned_by(answer.id, "me")
    assert not streams.owned_by(answer.id, "someone else")
    assert streams.owner("nope") is None and not streams.owned_by("nope", "me")
    assert streams.events("nope", 0) is None
    assert not streams.stop("nope")
    assert streams.shell("nope") is None


async def test_a_page_reloaded_mid_answer_resumes_after_what_it_shows(streams: AnswerStreams) -> None:
    answer = streams.start(texts("First paragraph.\n\n", "Second", delay=0.05), owner="me")
    for _ in range(100):
        await asyncio.sleep(0.01)
        shell = streams.shell(answer.id)
        if shell is not None and "?after=" in shell:
            break
    assert shell is not None and "First paragraph." in shell
    assert f'hx-sse:connect="{answer.events_url}?after=' in shell

    await read(streams, answer.id)
    ended = streams.shell(answer.id)
    assert ended is not None and "hx-sse:connect" not in ended and '<dl class="timing">' in ended


async def test_an_ended_answer_is_forgotten_after_the_retention() -> None:
    answers = AnswerStreams(settings=dataclasses.replace(SETTINGS, retention=0.05))
    try:
        answer = answers.start(texts("x"), owner="me")
        await read(answers, answer.id)
        await asyncio.sleep(0.2)
        assert answers.owner(answer.id) is None and answers.events(answer.id, 0) is None
    finally:
        await answers.aclose()


async def test_closing_ends_running_answers_with_a_notice() -> None:
    async def slow() -> AsyncIterator[str]:
        yield "begun "
        await asyncio.sleep(60)
        yield "never"

    recorded: list[EndedAnswer] = []
    answers = AnswerStreams(settings=SETTINGS, record=lambda ended: asyncio.sleep(0, recorded.append(ended)))
    answer = answers.start(slow(), owner="me")
    await asyncio.sleep(0.05)

    await asyncio.wait_for(answers.aclose(), 5)

    assert [(r.id, r.status, r.text) for r in recorded] == [(answer.id, "interrupted", "begun ")]
    assert answers.owner(answer.id) is None


@pytest.mark.parametrize(
    ("last_event_id", "after", "cursor"),
    [(None, None, 0), ("7", None, 7), ("7", 3, 7), (None, 3, 3), ("x", 3, 3), ("²", None, 0), (" 5 ", None, 5)],
)
def test_the_cursor_is_the_last_event_id_else_after(last_event_id: str | None, after: int | None, cursor: int) -> None:
    assert event_cursor(last_event_id, after) == cursor
