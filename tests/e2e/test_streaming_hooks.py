"""The Litestar plugin over real uvicorn: a host's own ownership check (an async `allow` hook) instead of
the owner cookie, and its static files under a prefix of the host's choosing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
from litestar import Litestar, Request, get
from litestar.di import NamedDependency

from folyam.assets import IMMUTABLE, REVALIDATE
from folyam.streaming import STATIC_DIR, AnswerStreams, FolyamStreams, answer_streams
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


@get("/head")
async def head(streams: NamedDependency[AnswerStreams]) -> str:
    return str(streams.head())


def test_the_static_files_head_links_are_kept_a_year_there_and_revalidated_anywhere_else() -> None:
    app = Litestar([head], plugins=[FolyamStreams(prefix="/kit")])
    with serve(app) as url, httpx.Client(timeout=10) as client:
        links = re.findall(r'(?:href|src)="(/kit/static/([^"?]+)\?(v=[0-9a-f]{12}))"', client.get(f"{url}/head").text)
        assert {name for _, name, _ in links} == {
            "markdown.css",
            "pygments.css",
            "vendor/htmx-4.0.1.min.js",
            "vendor/hx-sse-4.0.1.min.js",
        }
        for link, name, version in links:
            for method in ("GET", "HEAD"):
                kept = client.request(method, url + link)
                assert (kept.status_code, kept.headers["cache-control"]) == (200, IMMUTABLE), (method, link)
            assert client.get(url + link).content == (STATIC_DIR / name).read_bytes()
            # The same file anywhere else: bare, an older version, another parameter besides.
            for other in (name, f"{name}?v=000000000000", f"{name}?{version}&x=1"):
                answer = client.get(f"{url}/kit/static/{other}")
                assert (answer.status_code, answer.headers["cache-control"]) == (200, REVALIDATE), other
        for missing in ("missing.css?v=000000000000", "vendor", "%2e%2e/pyproject.toml"):
            answer = client.get(f"{url}/kit/static/{missing}")
            assert (answer.status_code, answer.headers["cache-control"]) == (404, REVALIDATE), missing
