"""The seed Folyam replaced, rebuilt as the yardstick for CPU per token: FastAPI + the openai SDK.

A page at `/` (a static HTML shell whose script would read the stream), and `GET /chat?q=…`: the SDK's
*parsed* stream (`await client.chat.completions.create(..., stream=True)`, one pydantic
`ChatCompletionChunk` per chunk), each chunk forwarded as one SSE event `data: {chunk.model_dump_json()}`,
then `data: [DONE]`. No coalescing, no HTML rendering, no event log, no resume, no sessions.

The SDK reads OPENAI_BASE_URL and OPENAI_API_KEY from the environment. Run it from the repository root:

    OPENAI_BASE_URL=http://127.0.0.1:8101/v1 OPENAI_API_KEY=sk-bench \\
        .venv/bin/python -m bench.seed_relay --port 8102
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import openai
import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, StreamingResponse

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ask</title></head>
<body><form id="ask"><input name="q" aria-label="Question"><button>Ask</button></form><pre id="answer"></pre>
<script>
document.getElementById("ask").onsubmit = (e) => {
  e.preventDefault();
  const source = new EventSource("/chat?q=" + encodeURIComponent(e.target.q.value));
  source.onmessage = (m) => {
    if (m.data === "[DONE]") return source.close();
    document.getElementById("answer").textContent += JSON.parse(m.data).choices[0]?.delta?.content ?? "";
  };
};
</script></body></html>
"""


def create_app(model: str) -> FastAPI:
    client: openai.AsyncOpenAI | None = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal client
        client = openai.AsyncOpenAI()
        yield
        await client.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.get("/chat")
    async def chat(q: str) -> StreamingResponse:
        assert client is not None
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": q}], stream=True
        )

        async def events() -> AsyncIterator[str]:
            async for chunk in stream:
                yield f"data: {chunk.model_dump_json()}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The seed relay: FastAPI + the openai SDK's parsed stream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="bench-model")
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.model), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
