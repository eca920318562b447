"""The Litestar plugin with a host's own ownership check (an async `allow` hook) instead of the owner
cookie, over real uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from litestar import Litestar, Request, get
from litestar.di import NamedDependency

from folyam.streaming import AnswerStreams, FolyamStreams, answer_streams
from tests.support.servers import serve
from tests.support.sse import answer_html, read_events


async def hello() -> AsyncIterator[str]:
    yield "Hello."


async def same_user(request: Request[Any, Any, Any], answer_id: str) -> bool:
    return answer_streams(request).owner(answer_id) == request.headers.get("x-user")


@get("/start")
async def start(request: Request[Any, Any, Any], streams: NamedDependency[AnswerStreams]) -> str:
    return streams.start(hello(), owner=request.headers["x-user"]).events_url


def test_a_hosts_own_check_decides_who_reads_an_answer() -> None:
    app = Litestar([start], plugins=[FolyamStreams(prefix="/streams", allow=same_user)])
    with serve(app) as url, httpx.Client(timeout=10) as client:
        events_url = client.get(f"{url}/start", headers={"x-user": "ann"}).text
        assert events_url.startswith("/streams/answers/")

        assert client.get(url + events_url, headers={"x-user": "bob"}).status_code == 404
        client.headers["x-user"] = "ann"
        _, frames = read_events(client, url + events_url)
        assert frames[-1].event == "done" and answer_html(frames) == "<p>Hello.</p>\n"
