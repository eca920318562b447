from __future__ import annotations

import asyncio

from folyam.providers import TextDelta, Usage
from folyam.providers.demo import DemoProvider, demo_answer


async def pieces(provider: DemoProvider, question: str, max_tokens: int = 10_000) -> list[object]:
    return [p async for p in provider.stream([{"role": "user", "content": question}], max_tokens=max_tokens)]


async def test_streams_a_markdown_answer_about_the_question_then_usage() -> None:
    result = await pieces(DemoProvider(first_token_delay=0, tokens_per_second=0), "tidal rivers")
    *texts, usage = result
    assert all(isinstance(t, TextDelta) for t in texts)
    text = "".join(t.text for t in texts)  # type: ignore[attr-defined]
    assert text == demo_answer("tidal rivers")
    assert "tidal rivers" in text and "```python" in text and "| Part | Job |" in text
    assert usage == Usage(prompt_tokens=2, completion_tokens=len(texts), total_tokens=2 + len(texts))


async def test_is_deterministic_and_honours_max_tokens() -> None:
    provider = DemoProvider(first_token_delay=0, tokens_per_second=0)
    assert await pieces(provider, "q") == await pieces(provider, "q")
    assert len(await pieces(provider, "q", max_tokens=5)) == 6  # five deltas and the usage


async def test_paces_the_first_token_and_the_rest() -> None:
    provider = DemoProvider(first_token_delay=0.2, tokens_per_second=100)
    loop = asyncio.get_running_loop()
    start = loop.time()
    stream = provider.stream([{"role": "user", "content": "q"}], max_tokens=21)
    await anext(stream)
    first = loop.time() - start
    async for _ in stream:
        pass
    total = loop.time() - start
    assert first >= 0.19
    assert total >= 0.2 + 20 / 100 - 0.01  # 20 more tokens at 100 per second


def test_long_questions_are_shortened_in_the_heading() -> None:
    answer = demo_answer("word " * 100)
    assert "…" in answer.splitlines()[0]
    assert demo_answer("   ").startswith("## About “your question”")


async def test_offers_only_itself_and_answers_whatever_model_is_asked() -> None:
    provider = DemoProvider(first_token_delay=0, tokens_per_second=0)
    assert await provider.list_models() == ["folyam-demo"] == [provider.model]
    asked = [p async for p in provider.stream([{"role": "user", "content": "q"}], max_tokens=50, model="gpt-x")]
    assert asked == await pieces(provider, "q", max_tokens=50)
