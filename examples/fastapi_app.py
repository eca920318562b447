"""A FastAPI app that streams an answer into its own page with Folyam: `python examples/fastapi_app.py`.

The answer's text comes from a plain async generator (here the offline demo model's canned answer, word
by word); any async iterable of text, or a Folyam `Provider`, works the same.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.middleware import Middleware
from fastapi.responses import HTMLResponse

from folyam.providers.demo import demo_answer
from folyam.streaming import OwnerCookieMiddleware, StreamsApp, owner_of

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>My app, with a streamed answer</title>
  {head}
</head>
<body>
  <h1>My app</h1>
  {answer}
  <button type="button" hx-post="{answer.stop_url}" hx-swap="none">Stop</button>
</body>
</html>
"""


async def words(question: str) -> AsyncIterator[str]:
    for word in re.findall(r"\s*\S+", demo_answer(question)):
        yield await asyncio.sleep(0.01, word)


streams = StreamsApp(prefix="/folyam")
app = FastAPI(lifespan=streams.lifespan, middleware=[Middleware(OwnerCookieMiddleware)])
app.mount("/folyam", streams)


@app.get("/", response_class=HTMLResponse)
async def index(request: Request) -> str:
    answer = streams.answers.start(words("FastAPI"), owner=owner_of(request.scope))
    return PAGE.format(head=streams.answers.head(), answer=answer)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8002")))
