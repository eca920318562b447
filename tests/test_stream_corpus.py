"""Every recorded stream shape, replayed byte for byte by the fake upstream and read by the provider over
real HTTP: the answer, reasoning, refusal, finish reason, usage and error each shape must give."""

from __future__ import annotations

import functools
import itertools
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from folyam.providers import (
    Finished,
    ProviderError,
    ReasoningDelta,
    RefusalDelta,
    StreamPiece,
    TextDelta,
    UpstreamBroken,
    Usage,
)
from folyam.providers._chunks import ChunkReader, Piece
from folyam.providers._sse import MAX_EVENT_BYTES, EventStreamDecoder
from folyam.providers.openai_chat import OpenAIChatProvider
from folyam.redaction import Redactor
from tests.support.corpus import STREAMS, Expected, Shape, shapes
from tests.support.fake_upstream import FakeUpstream

SHAPES = shapes()


@pytest.fixture
async def provider(fake_upstream: tuple[FakeUpstream, str]) -> OpenAIChatProvider:
    _, url = fake_upstream
    return OpenAIChatProvider(model="m", base_url=url, api_key=None, timeout=5, max_retries=0)


def test_every_shape_names_its_source() -> None:
    assert len(SHAPES) >= 30
    assert sorted(p.stem for p in STREAMS.glob("*.toml")) == [shape.name for shape in SHAPES]
    for shape in SHAPES:
        assert shape.source.strip(), shape.name


@pytest.mark.parametrize("write_size", [None, 7], ids=["whole", "7-byte writes"])
@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
async def test_each_shape_reads_as_the_server_meant(
    provider: OpenAIChatProvider, upstream: FakeUpstream, shape: Shape, write_size: int | None
) -> None:
    upstream.script(shape.script(write_size))
    pieces: list[StreamPiece] = []
    error: ProviderError | None = None
    try:
        async for piece in provider.stream([{"role": "user", "content": "q"}], max_tokens=50):
            pieces.append(piece)
    except ProviderError as exc:
        error = exc
    finally:
        await provider.aclose()
    assert _summary(pieces, error, shape.expect.message) == shape.expect
    assert shape.expect.message in str(error or "")


def _summary(pieces: list[StreamPiece], error: ProviderError | None, message: str) -> Expected:
    """What arrived, in the corpus's terms (the error message is checked by containment)."""
    finishes = [p.reason for p in pieces if isinstance(p, Finished)]
    assert len(finishes) <= 1, "Finished is yielded once"
    usages = [p for p in pieces if isinstance(p, Usage)]
    last = usages[-1] if usages else None
    return Expected(
        text="".join(p.text for p in pieces if isinstance(p, TextDelta)),
        reasoning="".join(p.text for p in pieces if isinstance(p, ReasoningDelta)),
        refusal="".join(p.text for p in pieces if isinstance(p, RefusalDelta)),
        finish=finishes[0] if finishes else None,
        usage=(last.prompt_tokens, last.completion_tokens, last.total_tokens) if last else None,
        error=type(error).__name__ if error else None,
        message=message,
    )


def _events(chunks: list[bytes]) -> list[object]:
    return _framed(chunks, MAX_EVENT_BYTES)


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
def test_any_cut_of_a_shape_frames_the_same_events(shape: Shape) -> None:
    body = shape.body
    whole = _events([body])
    assert whole or shape.status != 200
    for cut in range(1, len(body)):
        assert _events([body[:cut], body[cut:]]) == whole, cut
    assert _events([body[i : i + 1] for i in range(len(body))]) == whole


def test_framing_follows_the_event_stream_rules() -> None:
    assert _events([b"data: a\ndata:b\ndata\n\n"]) == [(b"", b"a\nb\n")]
    assert _events([b": comment\r\nid: 7\r\nretry: 10\r\nevent: error\r\ndata:  two spaces\r\n\r\n"]) == [
        (b"error", b" two spaces")
    ]
    assert _events([b"\xef\xbb", b"\xbfdata: x\r", b"\ndata: y\r\r"]) == [(b"", b"x\ny")]
    assert _events([b"event: a\n\ndata: b\n\n"]) == [(b"", b"b")]  # an event without data is not dispatched
    assert _events([b'\n\n{"error":\n', b' "boom"}']) == [(b"", b'{"error":\n "boom"}')]


def test_an_oversized_event_is_a_clear_error() -> None:
    decoder = EventStreamDecoder(max_event_bytes=1000)
    decoder.feed(b"data: " + b"x" * 500 + b"\n")
    with pytest.raises(UpstreamBroken, match="oversized chunk"):
        decoder.feed(b"data: " + b"x" * 600 + b"\n")
    with pytest.raises(UpstreamBroken, match="oversized chunk"):
        EventStreamDecoder(max_event_bytes=1000).feed(b"data: " + b"x" * 2000)  # no line end yet
    decoder = EventStreamDecoder(max_event_bytes=1000)
    decoder.feed(b"data: {}\n\n")
    with pytest.raises(UpstreamBroken, match="oversized chunk"):
        decoder.feed(b"data: " + b"x" * 2000 + b"\n\n")  # a whole event, as a read at a real pace has them
    with pytest.raises(UpstreamBroken, match="oversized chunk"):
        decoder.feed(b"data: {}\n\n")  # and after it, as line by line: nothing more is read


def _split(contents: list[str]) -> tuple[str, str]:
    reader = ChunkReader(Redactor())
    pieces: list[Piece] = []
    for content in contents:
        reader.read(b'{"choices":[{"delta":{"content":%s}}]}' % _json(content), pieces)
    pieces += reader.close()
    text = "".join(p if isinstance(p, str) else p.text for p in pieces if isinstance(p, str | TextDelta))
    reasoning = "".join(p.text for p in pieces if isinstance(p, ReasoningDelta))
    return text, reasoning


def _json(text: str) -> bytes:
    return json.dumps(text).encode()


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=8))
def test_think_tags_split_anywhere_read_the_same(cuts: list[int]) -> None:
    whole = "  <think>\nweigh </thi the options</think>\n\nThe answer: <think> is text here."
    points = sorted({0, len(whole), *(c % (len(whole) + 1) for c in cuts)})
    parts = [whole[a:b] for a, b in itertools.pairwise(points) if whole[a:b]]
    assert _split(parts) == ("The answer: <think> is text here.", "weigh </thi the options")


def test_think_tags_only_count_at_the_start() -> None:
    assert _split(["Hello <think>x</think>"]) == ("Hello <think>x</think>", "")
    assert _split(["<thi"]) == ("<thi", "")  # never completed: it was the answer
    assert _split(["<think>", "unfinished"]) == ("", "unfinished")
    assert _split(["\n\n", "Answer"]) == ("\n\nAnswer", "")


def test_framing_stays_linear_on_a_long_line_in_tiny_reads() -> None:
    decoder = EventStreamDecoder()
    start = time.process_time()
    for _ in range(200_000):
        decoder.feed(b"x")  # one 200 kB line, a byte at a time: never copied whole until it ends
    assert decoder.feed(b"\n\n") == []  # a field named x…x: ignored
    assert time.process_time() - start < 2.0


_LINES = st.sampled_from(
    [
        *(b"data: {}", b"data:x", b"data: [DONE]", b"data:  two", b"data", b"event: error", b": keep-alive"),
        *(b"id: 3", b"", b"\xef\xbb\xbfdata: bom", b'{"error": "a JSON body"}'),
    ]
)
_ENDS = st.sampled_from([b"\n", b"\n", b"\n", b"\r\n", b"\r"])
# Mostly events of one `data: ` line, as servers send them; among them any lines with any line ends.
_PARTS = st.one_of(
    st.sampled_from([b"data: {}\n\n", b'data: {"a": 1}\n\n', b'data: {"text": "past a small limit"}\n\n']),
    st.just(b"data: {}\r\n\n"),  # a CRLF line end, then an LF one
    st.lists(st.tuples(_LINES, _ENDS), min_size=1, max_size=3).map(lambda lines: b"".join(a + b for a, b in lines)),
)


class _LineByLine(EventStreamDecoder):
    def _plain_events(self, head: bytes) -> None:
        return None  # every read line by line, as before the shorter way


def _framed(chunks: list[bytes], limit: int, kind: type[EventStreamDecoder] = EventStreamDecoder) -> list[object]:
    """The events of `chunks` read in turn, then at their end, with an error in their place for a read that
    fails (reading goes on after it, to compare the decoder's state as well)."""
    decoder, framed = kind(max_event_bytes=limit), list[object]()
    for read in [*(functools.partial(decoder.feed, chunk) for chunk in chunks), functools.partial(decoder.close)]:
        try:
            framed += read()
        except UpstreamBroken as exc:
            framed.append(str(exc))
    return framed


@settings(max_examples=300)
@given(
    st.lists(st.tuples(_PARTS, st.booleans()), max_size=16),
    st.lists(st.integers(min_value=0), max_size=4),
    st.sampled_from([b"data: {}\n\n", b""]),
    st.sampled_from([4 * 1024 * 1024, 12]),
)
def test_framing_of_any_stream_cut_anywhere_is_that_of_its_bytes_one_by_one(
    parts: list[tuple[bytes, bool]], cuts: list[int], first: bytes, limit: int
) -> None:
    # Reads of whole `data: ` events take a shorter way than line by line (once the stream is known to be
    # one: after its first line, here an event read on its own or none); the same reads line by line frame
    # the same events, and fail alike past a (small) limit; with no limit in reach, so do the bytes one by
    # one, which never take the shorter way. Reads end where a part ends (where it says so) and elsewhere.
    body = b"".join(part for part, _ in parts)
    ends = itertools.accumulate(len(part) for part, _ in parts)
    cut_at = {*(c % (len(body) + 1) for c in cuts), *(end for end, (_, cut) in zip(ends, parts, strict=True) if cut)}
    points = sorted({0, len(body), *cut_at})
    reads = [body[a:b] for a, b in itertools.pairwise(points)]
    reads = [first, *reads] if first else reads
    framed = _framed(reads, limit)
    assert framed == _framed(reads, limit, _LineByLine)
    if limit > len(first + body):
        assert framed == _framed([first, *(body[i : i + 1] for i in range(len(body)))], limit)
