"""The OpenAI provider on its own, against the fake upstream over real HTTP."""

from __future__ import annotations

import pytest

from folyam.providers import TextDelta, UpstreamBroken, Usage
from folyam.providers.openai_chat import OpenAIChatProvider, _pieces
from folyam.redaction import Redactor
from tests.support.fake_upstream import FakeUpstream, Script

NO_SECRETS = Redactor()


@pytest.fixture
async def provider(fake_upstream: tuple[FakeUpstream, str]) -> OpenAIChatProvider:
    _, url = fake_upstream
    return OpenAIChatProvider(model="m", base_url=url, api_key=None, timeout=2, max_retries=0)


async def test_streams_text_deltas_then_usage(provider: OpenAIChatProvider, upstream: FakeUpstream) -> None:
    upstream.script(Script(chunks=["a", "b"]))
    pieces = [p async for p in provider.stream([{"role": "user", "content": "q"}], max_tokens=7)]
    await provider.aclose()
    assert pieces == [TextDelta("a"), TextDelta("b"), Usage(11, 2, 13)]
    assert upstream.requests[0].body["max_tokens"] == 7
    # Without a key (Ollama, llama.cpp) the SDK still needs one; a placeholder is sent.
    assert upstream.requests[0].headers["authorization"] == "Bearer not-needed"


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
