"""A Litestar app that streams an answer into its own page with Folyam: `python examples/litestar_app.py`.

The answer's text comes from a plain async generator (here the offline demo model's canned answer, word
by word); any async iterable of text, or a Folyam `Provider`, works the same.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from litestar import Litestar, Request, get
from litestar.di import NamedDependency
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig

from folyam.providers.demo import demo_answer
from folyam.streaming import AnswerStreams, FolyamStreams, owner_of


async def words(question: str) -> AsyncIterator[str]:
    for word in re.findall(r"\s*\S+", demo_answer(question)):
        yield await asyncio.sleep(0.01, word)


@get("/")
async def index(request: Request, streams: NamedDependency[AnswerStreams]) -> Template:
    answer = streams.start(words("Litestar"), owner=owner_of(request.scope))
    return Template("page.html", context={"head": streams.head(), "answer": answer})


templates = TemplateConfig(directory=Path(__file__).parent / "templates", engine=JinjaTemplateEngine)
app = Litestar([index], plugins=[FolyamStreams(prefix="/folyam")], template_config=templates)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8001")))
