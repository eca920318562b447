"""The naive relay that Folyam's CPU cost is compared against, served by uvicorn in its own process.

Per request it iterates the openai SDK's *parsed* stream (`await client.chat.completions.create(...,
stream=True)`, one pydantic `ChatCompletionChunk` per chunk) and forwards each chunk's content as one
SSE event built with an f-string: no coalescing, no HTML, no event log, no resume. It runs on the same
framework and server as Folyam (Litestar's `Stream` on uvicorn), so the comparison measures the relay's
design rather than the framework. A closing `event: done` frame lets the benchmark client stop the same
way it does for Folyam.

The SDK reads OPENAI_BASE_URL and OPENAI_API_KEY from the environment. Run it from the repository root:

    OPENAI_BASE_URL=http://127.0.0.1:8101/v1 OPENAI_API_KEY=sk-bench \\
        .venv/bin/python -m bench.naive_relay --port 8102

and ask with `GET /chat?q=...`.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import openai
import uvicorn
from litestar import Litestar, get
from litestar.response import Stream


def create_app(model: str) -> Litestar:
    client = openai.AsyncOpenAI()

    @get("/chat")
    async def chat(q: str) -> Stream:
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": q}], stream=True
        )

        async def events() -> AsyncIterator[str]:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield f"data: {chunk.choices[0].delta.content}\n\n"
            yield "event: done\ndata: \n\n"

        return Stream(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def close_client() -> None:
        await client.close()

    # No logging config: nothing logs per request, as in Folyam (which quiets httpx and openai).
    return Litestar(route_handlers=[chat], on_shutdown=[close_client], logging_config=None, openapi_config=None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A naive SSE relay of an OpenAI-compatible stream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="bench-model")
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.model), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
