"""The offline demo model: a deterministic markdown answer streamed at a realistic pace."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence

from folyam.providers import BetweenReads, ChatMessage, StreamPiece, TextDelta, Usage

__all__ = ["DemoProvider", "demo_answer"]

_TOKEN = re.compile(r"\s*\S+|\s+")
# At zero delay, yield to the event loop this often so one answer cannot starve the others.
_YIELD_EVERY = 32

_ANSWER = """\
## About “{topic}”

This answer comes from Folyam's **offline demo model**: no language model was asked. It streams a \
fixed markdown answer at a realistic pace so you can see how a real one would arrive, token by token, \
as server-rendered HTML over Server-Sent Events.

A real model would now explain *{topic}* in its own words. Set `OPENAI_API_KEY` (or point \
`OPENAI_BASE_URL` at Ollama, vLLM or llama.cpp) and restart to get one.

### What happens while you read this

1. The server asked the demo model for an answer in a background task.
2. Each group of tokens was rendered into an HTML fragment with Jinja.
3. The fragments travelled over SSE and htmx swapped them into the page.
4. The last fragment carries the timing: time to first token, duration and tokens per second.

| Part | Job |
| --- | --- |
| Provider | streams text deltas |
| Renderer | turns them into safe HTML |
| Event log | numbers every event so a reconnect resumes exactly |

```python
async for piece in provider.stream(messages, max_tokens=512):
    renderer.feed(piece.text)
```

> Nothing you type here leaves this machine while the demo model is on.

That is all for “{topic}”. Ask another question to see it stream again.
"""


def demo_answer(question: str) -> str:
    topic = " ".join(question.split())
    if len(topic) > 80:
        topic = topic[:79] + "…"
    return _ANSWER.format(topic=topic or "your question")


class DemoProvider:
    def __init__(self, *, first_token_delay: float, tokens_per_second: float) -> None:
        self._first_token_delay = first_token_delay
        self._tokens_per_second = tokens_per_second

    @property
    def model(self) -> str:
        return "folyam-demo"

    @property
    def is_demo(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None

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
        # There is only the one demo model, whatever was asked for; it reads no socket (between_reads unused).
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        tokens = _TOKEN.findall(demo_answer(question))[:max_tokens]
        loop = asyncio.get_running_loop()
        interval = 1 / self._tokens_per_second if self._tokens_per_second > 0 else 0.0
        start = loop.time() + self._first_token_delay
        for index, token in enumerate(tokens):
            # Sleep until each token's slot on an absolute schedule, so pacing does not drift.
            delay = start + index * interval - loop.time()
            if delay > 0.001:
                await asyncio.sleep(delay)
            elif index % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            yield TextDelta(token)
        yield Usage(
            prompt_tokens=len(_TOKEN.findall(question)),
            completion_tokens=len(tokens),
            total_tokens=len(_TOKEN.findall(question)) + len(tokens),
        )
