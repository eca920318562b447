"""The OpenAI provider on its own, against the fake upstream over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json

import pytest
from aiohttp.client_proto import ResponseHandler
from hypothesis import given, settings
from hypothesis import strategies as st

from folyam.providers import (
    CHARS_PER_TOKEN,
    ChatMessage,
    Finished,
    ReasoningDelta,
    RefusalDelta,
    StreamPiece,
    TextDelta,
    UpstreamAuthFailed,
    UpstreamBroken,
    UpstreamEndedEarly,
    UpstreamRejected,
    UpstreamUnavailable,
    UpstreamUnreachable,
    Usage,
)
from folyam.providers._chunks import ChunkReader, Piece
from folyam.providers._sse import EventStreamDecoder
from folyam.providers.openai_chat import OpenAIChatProvider, _ReadPieces
from folyam.redaction import Redactor
from tests.support.fake_upstream import FakeUpstream, ModelList, Script
from tests.support.forward_proxy import ForwardProxy
from tests.support.servers import free_port

NO_SECRETS = Redactor()


@pytest.fixture
async def provider(fake_upstream: tuple[FakeUpstream, str]) -> OpenAIChatProvider:
    _, url = fake_upstream
    return OpenAIChatProvider(model="m", base_url=url, api_key=None, timeout=2, max_retries=0)


async def test_streams_text_deltas_then_usage(provider: OpenAIChatProvider, upstream: FakeUpstream) -> None:
    upstream.script(Script(chunks=["a", "b"]))
    pieces = [p async for p in provider.stream([{"role": "user", "content": "q"}], max_tokens=7)]
    await provider.aclose()
    # The text of one read comes as one piece (this fast upstream's two chunks may arrive together).
    texts = [p for p in pieces if isinstance(p, TextDelta)]
    assert "".join(p.text for p in texts) == "ab" and sum(p.chunks for p in texts) == 2
    assert pieces[len(texts) :] == [Finished("stop"), Usage(11, 2, 13)]
    assert upstream.requests[0].body["max_tokens"] == 7
    # Without a key (Ollama, llama.cpp) the SDK still needs one; a placeholder is sent.
    assert upstream.requests[0].headers["authorization"] == "Bearer not-needed"


async def test_the_chat_request_carries_the_sdks_headers_and_says_which_try_it_is(
    fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream
) -> None:
    # The SDK makes the headers (its auth, user agent and platform headers); aiohttp sends them.
    _, url = fake_upstream
    provider = OpenAIChatProvider(
        model="m", base_url=url, api_key="sk-test-key", timeout=2, max_retries=1, retry_backoff=0.01
    )
    upstream.script(Script(fault="status", status=503), Script(chunks=["hi"]))
    pieces = [p async for p in provider.stream([{"role": "user", "content": "q"}], max_tokens=7)]
    await provider.aclose()
    assert pieces[0] == TextDelta("hi")
    first, second = upstream.requests[-2:]
    for request in (first, second):
        assert request.path.endswith("/v1/chat/completions")
        assert request.headers["authorization"] == "Bearer sk-test-key"
        assert request.headers["user-agent"].startswith("AsyncOpenAI/Python ")
        assert request.headers["content-type"] == "application/json"
        assert request.headers["x-stainless-lang"] == "python"
        assert request.headers["x-stainless-read-timeout"] == "2.0"
    assert [first.headers["x-stainless-retry-count"], second.headers["x-stainless-retry-count"]] == ["0", "1"]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"error": {"message": "no such model", "type": "invalid_request_error"}}', "no such model"),
        (b'{"error": "no such model"}', "no such model"),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b"<html><body>Not Found</body></html>\n", "<html><body>Not Found</body></html>"),
        (b"", "Error code: 404"),
    ],
    ids=["openai", "error string", "detail", "html", "empty"],
)
async def test_an_error_status_is_told_in_the_servers_words(
    provider: OpenAIChatProvider, upstream: FakeUpstream, raw: bytes, words: str
) -> None:
    upstream.script(Script(raw=raw, raw_status=404, content_type="application/json"))
    with pytest.raises(UpstreamRejected) as caught:
        async for _ in provider.stream([{"role": "user", "content": "q"}], max_tokens=7):
            pass
    await provider.aclose()
    assert caught.value.detail == f"HTTP 404: {words}"


async def test_of_a_huge_error_body_only_the_first_64_kib_are_read(
    provider: OpenAIChatProvider, upstream: FakeUpstream
) -> None:
    upstream.script(Script(raw=b"x" * 4_000_000, raw_status=502, content_type="text/plain"))
    with pytest.raises(UpstreamUnavailable) as caught:
        async for _ in provider.stream([{"role": "user", "content": "q"}], max_tokens=7):
            pass
    await provider.aclose()
    assert caught.value.detail == "HTTP 502: " + "x" * 65_536


async def test_the_environments_proxy_carries_the_request_unless_no_proxy_exempts_it(
    fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = fake_upstream
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    messages: list[ChatMessage] = [{"role": "user", "content": "q"}]
    async with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://pu%40x:pp@"))
        provider = OpenAIChatProvider(model="m", base_url=url, api_key="k", timeout=2, max_retries=0)
        pieces = [p async for p in provider.stream(messages, max_tokens=99)]
        await provider.aclose()
        assert "".join(p.text for p in pieces if isinstance(p, TextDelta)) == "Hello from the fake upstream."
        credentials = base64.b64encode(b"pu@x:pp").decode()
        assert proxy.seen == [(f"POST {url}/chat/completions HTTP/1.1", f"Basic {credentials}")]
        assert upstream.requests[-1].headers["authorization"] == "Bearer k"

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        provider = OpenAIChatProvider(model="m", base_url=url, api_key="k", timeout=2, max_retries=0)
        pieces = [p async for p in provider.stream(messages, max_tokens=99)]
        await provider.aclose()
        assert pieces[-1] == Usage(11, 6, 17)
        assert len(proxy.seen) == 1 and len(upstream.requests) == 2


def _pieces(payload: str, redact: Redactor) -> list[Piece]:
    pieces: list[Piece] = []
    ChunkReader(redact).read(payload.encode(), pieces)
    return pieces


def test_chunk_decoding_reads_only_what_it_needs() -> None:
    assert _pieces('{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}', NO_SECRETS) == []
    assert _pieces('{"choices":[{"delta":{"content":"x"},"logprobs":null}],"extra":1}', NO_SECRETS) == [TextDelta("x")]
    assert _pieces('{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}', NO_SECRETS) == [
        Usage(1, 2, 3)
    ]
    assert _pieces('{"choices":[{"delta":{}}],"usage":null}', NO_SECRETS) == []


def test_error_chunks_and_garbage_are_upstream_breaks() -> None:
    with pytest.raises(UpstreamBroken, match="reported an error: overloaded"):
        _pieces('{"error":{"message":"overloaded"}}', NO_SECRETS)
    with pytest.raises(UpstreamBroken, match="reported an error: plain"):
        _pieces('{"error":"plain"}', NO_SECRETS)
    with pytest.raises(UpstreamBroken, match="malformed chunk"):
        _pieces("{not json", NO_SECRETS)


async def test_each_request_names_its_model_or_the_configured_one(
    provider: OpenAIChatProvider, upstream: FakeUpstream
) -> None:
    messages: list[ChatMessage] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}]
    for model in ("fake-model-large", None):
        assert [p async for p in provider.stream(messages, max_tokens=7, model=model)]
    await provider.aclose()
    assert [(r.model, r.messages) for r in upstream.requests] == [
        ("fake-model-large", messages),
        ("m", messages),
    ]


async def test_lists_the_models_the_server_offers_as_sent(provider: OpenAIChatProvider, upstream: FakeUpstream) -> None:
    upstream.models = ModelList(ids=["b", "a", 7, None, "a", "x\u202eevil"])
    try:
        # Only strings: whether a name is acceptable is the catalog's call.
        assert await provider.list_models() == ["b", "a", "a", "x\u202eevil"]
    finally:
        await provider.aclose()
    [request] = upstream.model_requests
    assert (request.method, request.path, request.headers["authorization"]) == (
        "GET",
        "/v1/models",
        "Bearer not-needed",
    )


@pytest.mark.parametrize(
    ("listing", "error", "words"),
    [
        (ModelList(status=404), UpstreamRejected, "HTTP 404"),
        (ModelList(status=401), UpstreamAuthFailed, "HTTP 401"),
        (ModelList(status=503), UpstreamUnavailable, "HTTP 503"),
        (ModelList(raw=b"<html>not json</html>"), UpstreamBroken, "malformed list of models"),
        (ModelList(raw=b'{"data": "nope"}'), UpstreamBroken, "malformed list of models"),
        (ModelList(raw=b'{"data": [' + b'{"id": "m"},' * 100_000 + b"]}"), UpstreamBroken, "too large"),
    ],
    ids=["404", "401", "503", "garbage", "wrong shape", "too large"],
)
async def test_a_list_of_models_that_cannot_be_read_is_a_provider_error(
    provider: OpenAIChatProvider, upstream: FakeUpstream, listing: ModelList, error: type[Exception], words: str
) -> None:
    upstream.models = listing
    try:
        with pytest.raises(error, match=words):
            await provider.list_models()
    finally:
        await provider.aclose()


async def test_an_unreachable_server_lists_no_models() -> None:
    provider = OpenAIChatProvider(
        model="m", base_url=f"http://127.0.0.1:{free_port()}/v1", api_key=None, timeout=2, max_retries=0
    )
    try:
        with pytest.raises(UpstreamUnreachable, match="Could not read the model server's models"):
            await provider.list_models()
    finally:
        await provider.aclose()


async def test_a_server_that_ignores_stream_answers_whole(provider: OpenAIChatProvider, upstream: FakeUpstream) -> None:
    body = (
        b'{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"All at once"},'
        b'"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}}'
    )
    upstream.script(Script(raw=body, content_type="application/json"))
    pieces = [p async for p in provider.stream([{"role": "user", "content": "q"}], max_tokens=7)]
    await provider.aclose()
    assert pieces == [TextDelta("All at once"), Finished("stop"), Usage(3, 3, 6)]


@pytest.mark.parametrize(
    "body",
    [
        b'data: {"error":{"message":"bad header Authorization: Bearer sk-abcdefghijklmnop"}}\n\n',
        b'error: {"message":"bad header Authorization: Bearer sk-abcdefghijklmnop"}\n\n',
        b'{"error":"bad header Authorization: Bearer sk-abcdefghijklmnop"}',
    ],
    ids=["data", "error field", "json body"],
)
async def test_server_error_words_are_redacted_in_every_framing(
    provider: OpenAIChatProvider, upstream: FakeUpstream, body: bytes
) -> None:
    upstream.script(Script(raw=body))
    try:
        with pytest.raises(UpstreamBroken) as caught:
            async for _ in provider.stream([{"role": "user", "content": "q"}], max_tokens=7):
                pass
    finally:
        await provider.aclose()
    assert "sk-abcdefghijklmnop" not in str(caught.value) + (caught.value.detail or "")
    assert "bad header Authorization: [redacted]" in str(caught.value)


async def test_a_page_that_is_no_event_stream_is_an_error(provider: OpenAIChatProvider, upstream: FakeUpstream) -> None:
    upstream.script(Script(raw=b"<html><body>Sign in to continue</body></html>", content_type="text/html"))
    try:
        with pytest.raises(UpstreamBroken, match="not an event stream"):
            async for _ in provider.stream([{"role": "user", "content": "q"}], max_tokens=7):
                pass
    finally:
        await provider.aclose()


async def test_reasoning_refusal_and_finish_reason_are_pieces_of_their_own(
    provider: OpenAIChatProvider, upstream: FakeUpstream
) -> None:
    upstream.script(Script(reasoning=["hm"], chunks=["a"], refusal=["no"], finish_reason="length", usage=False))
    pieces = [p async for p in provider.stream([{"role": "user", "content": "q"}], max_tokens=7)]
    await provider.aclose()
    assert pieces == [ReasoningDelta("hm"), TextDelta("a"), RefusalDelta("no"), Finished("length")]


async def test_a_stream_ending_without_finish_reason_or_done_ended_early(
    provider: OpenAIChatProvider, upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=["a"], finish_reason=None, done=False))
    pieces = []
    with pytest.raises(UpstreamEndedEarly):
        async for piece in provider.stream([{"role": "user", "content": "q"}], max_tokens=7):
            pieces.append(piece)
    await provider.aclose()
    assert pieces == [TextDelta("a")]


async def test_credentials_in_the_base_url_go_as_basic_auth(
    fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream
) -> None:
    # A local server behind a proxy's basic auth: `http://user:pass@host/v1`, as httpx's transport sent it.
    _, url = fake_upstream
    with_credentials = url.replace("http://", "http://us%40er:p%3Ass@")
    provider = OpenAIChatProvider(model="m", base_url=with_credentials, api_key="sk-x", timeout=2, max_retries=0)
    upstream.script(Script(chunks=["hi"]))
    pieces = [p async for p in provider.stream([{"role": "user", "content": "q"}], max_tokens=7)]
    await provider.aclose()
    assert pieces[0] == TextDelta("hi")
    assert upstream.requests[-1].headers["authorization"] == "Basic " + base64.b64encode(b"us@er:p:ss").decode()


@pytest.mark.parametrize("compressed", [False, True], ids=["as sent", "gzip"])
async def test_an_event_stream_reads_the_same_compressed_or_not(
    provider: OpenAIChatProvider, upstream: FakeUpstream, compressed: bool
) -> None:
    # Read straight from aiohttp when it is sent as is; through the SDK's decoding when it is compressed.
    chunks = [{"choices": [{"index": 0, "delta": {"content": word}}]} for word in ("Hello", " there", ".")]
    body = b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks)
    body += b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
    upstream.script(Script(raw=body, gzip=compressed, write_size=7))
    messages: list[ChatMessage] = [{"role": "user", "content": "q"}]
    pieces = [p async for p in provider.stream(messages, max_tokens=99)]
    await provider.aclose()
    assert "".join(p.text for p in pieces if isinstance(p, TextDelta)) == "Hello there."
    assert pieces[-1] == Finished("stop")


async def test_the_upstream_socket_is_not_read_while_the_consumer_waits(
    provider: OpenAIChatProvider, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between reads (while the runner waits for its next flush) the connection's reading is paused: what
    the model sends meanwhile waits in the socket buffer, and the next read takes all of it at once."""
    connections: list[ResponseHandler] = []
    received = ResponseHandler.data_received

    def recording_data_received(self: ResponseHandler, data: bytes) -> None:
        if self not in connections:
            connections.append(self)
        received(self, data)

    monkeypatch.setattr(ResponseHandler, "data_received", recording_data_received)
    upstream.script(Script(chunks=[f"t{n} " for n in range(40)], delay=0.01))
    pieces: list[StreamPiece] = []
    reading_while_waiting: list[bool] = []
    texts_at_each_wait: list[int] = []

    async def between_reads() -> None:
        reading_while_waiting.append(any(c.transport is not None and c.transport.is_reading() for c in connections))
        texts_at_each_wait.append(sum(p.chunks for p in pieces if isinstance(p, TextDelta)))
        await asyncio.sleep(0.1)

    messages: list[ChatMessage] = [{"role": "user", "content": "q"}]
    async for piece in provider.stream(messages, max_tokens=99, between_reads=between_reads):
        pieces.append(piece)
    await provider.aclose()
    assert "".join(p.text for p in pieces if isinstance(p, TextDelta)) == "".join(f"t{n} " for n in range(40))
    # 0.4 s of tokens come in a few reads 0.1 s apart, not 40, and the socket was paused during every
    # wait (but a last one after the body's end: the connection is back in the pool by then).
    assert 2 <= len(reading_while_waiting) <= 8
    assert not any(reading_while_waiting[:-1])
    # Each read takes every token that came during the wait (~10), not one of them with the rest held
    # back for the read after (aiohttp's protocol-level pause did that: its parser stayed paused); and
    # they come as one piece.
    per_read = [later - earlier for earlier, later in itertools.pairwise(texts_at_each_wait)][1:-1]
    assert per_read and min(per_read) >= 4, texts_at_each_wait
    assert sum(isinstance(p, TextDelta) for p in pieces) <= len(texts_at_each_wait) + 1


def _sse(*deltas: dict[str, str]) -> bytes:
    return b"".join(b"data: " + json.dumps({"choices": [{"delta": delta}]}).encode() + b"\n\n" for delta in deltas)


def _read(max_tokens: int, body: bytes) -> list[StreamPiece]:
    pieces, failure = _ReadPieces(ChunkReader(NO_SECRETS), EventStreamDecoder(), max_tokens).of(body)
    assert failure is None
    return pieces


def test_a_reads_text_and_thinking_come_as_one_piece_each_in_order() -> None:
    body = _sse({"reasoning_content": "a"}, {"reasoning": "b"}, {"content": "c"}, {"content": "d"}, {"content": "e"})
    assert _read(99, body) == [ReasoningDelta("ab", 2), TextDelta("cde", 3)]
    body = _sse({"content": "a"}, {"refusal": "no"}, {"content": "b"}, {"content": "c"})
    body += b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": {"total_tokens": 9}}\n\n'
    assert _read(99, body) == [TextDelta("a"), RefusalDelta("no"), TextDelta("bc", 2), Finished("stop"), Usage(0, 0, 9)]


def test_pieces_are_joined_only_within_the_output_limit() -> None:
    # The runner takes pieces up to the limit (in chunks, and in characters per chunk): the one that
    # crosses it comes alone, so the text before it is kept, as when each chunk came alone.
    assert _read(3, _sse(*({"content": c} for c in "abcde"))) == [
        TextDelta("abc", 3),
        TextDelta("d"),
        TextDelta("e"),
    ]
    long = _sse({"content": "x" * 300}, {"content": "y" * 20}, {"content": "z"}, {"content": "w"})
    assert _read(10, long) == [TextDelta("x" * 300 + "y" * 20, 2), TextDelta("z"), TextDelta("w")]
    # Refusals count too.
    assert _read(2, _sse({"refusal": "r"}, {"content": "a"}, {"content": "b"})) == [
        RefusalDelta("r"),
        TextDelta("a"),
        TextDelta("b"),
    ]


_PIECES = st.lists(
    st.one_of(
        st.text(max_size=6) | st.text(min_size=30, max_size=60),  # answer text as the chunk reader hands it over
        st.builds(TextDelta, st.text(max_size=6)),  # (from the `<think>` splitter)
        st.builds(ReasoningDelta, st.text(max_size=6)),
        st.builds(RefusalDelta, st.text(max_size=6)),
        st.just(Finished("stop")),
        st.just(Usage(1, 2, 3)),
    ),
    max_size=12,
)


@settings(max_examples=300)
@given(st.lists(_PIECES, max_size=3), st.integers(min_value=0, max_value=12))
def test_a_reads_pieces_join_as_its_runs_of_text_within_the_limit(reads: list[list[Piece]], max_tokens: int) -> None:
    joiner = _ReadPieces(ChunkReader(NO_SECRETS), EventStreamDecoder(), max_tokens)
    chunks_left, chars_left = max_tokens, max_tokens * CHARS_PER_TOKEN
    for pieces in reads:
        expected: list[StreamPiece] = []
        for piece in pieces:
            piece = TextDelta(piece) if isinstance(piece, str) else piece
            if isinstance(piece, TextDelta | ReasoningDelta | RefusalDelta):
                chunks_left -= 1
                chars_left -= len(piece.text)
                last = expected[-1] if expected else None
                joins = type(last) is type(piece) and not isinstance(piece, RefusalDelta)
                if joins and chunks_left >= 0 and chars_left >= 0:
                    assert isinstance(last, TextDelta | ReasoningDelta)
                    expected[-1] = type(last)(last.text + piece.text, last.chunks + 1)
                    continue
            expected.append(piece)
        assert joiner._join(pieces) == expected


def test_an_error_after_text_in_the_same_read_comes_after_that_text() -> None:
    reads = _ReadPieces(ChunkReader(NO_SECRETS), EventStreamDecoder(), 99)
    body = _sse({"content": "a"}, {"content": "b"}) + b'event: error\ndata: {"message": "boom"}\n\n'
    pieces, failure = reads.of(body)
    assert pieces == [TextDelta("ab", 2)]
    assert isinstance(failure, UpstreamBroken) and "boom" in str(failure)
    reads = _ReadPieces(ChunkReader(NO_SECRETS), EventStreamDecoder(), 99)
    pieces, failure = reads.of(_sse({"content": "a"}) + b"data: {not json\n\n")
    assert pieces == [TextDelta("a")]
    assert isinstance(failure, UpstreamBroken) and "malformed" in str(failure)


async def test_text_read_before_an_error_event_is_kept(provider: OpenAIChatProvider, upstream: FakeUpstream) -> None:
    # Over HTTP, in one read: the pieces before the error come out, then the error is raised.
    body = _sse({"content": "kept "}, {"content": "text"}) + b'event: error\ndata: {"message": "overloaded"}\n\n'
    upstream.script(Script(raw=body))
    pieces: list[StreamPiece] = []
    with pytest.raises(UpstreamBroken, match="overloaded"):
        async for piece in provider.stream([{"role": "user", "content": "q"}], max_tokens=99):
            pieces.append(piece)
    await provider.aclose()
    assert "".join(p.text for p in pieces if isinstance(p, TextDelta)) == "kept text"
