"""The apps under examples/: each served by real uvicorn on loopback and read over HTTP as a browser
would (the page, its answer's event stream, a reconnect, another browser, a stop), and each started
with its one command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from folyam.components import make_environment
from folyam.markdown import MarkdownPipeline
from folyam.providers.demo import demo_answer
from folyam.streaming import OWNER_COOKIE
from tests.support.examples import EXAMPLES, run_example
from tests.support.servers import free_port, wait_until_serving
from tests.support.sse import Frame, answer_html, read_events, read_some

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = MarkdownPipeline(make_environment())


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def example(
    request: pytest.FixtureRequest, wheel_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """An example app run with its one command in a fresh virtual environment that has Folyam only from
    its wheel: its base URL and the question it answers."""
    with run_example(wheel_python, request.param, tmp_path_factory.mktemp("example")) as url:
        yield url, EXAMPLES[request.param]


def open_page(client: httpx.Client, base_url: str) -> tuple[str, str, str]:
    """The page's HTML, its answer's events URL and its stop URL."""
    page = client.get(base_url + "/")
    page.raise_for_status()
    events = re.search(r'hx-sse:connect="([^"]+)"', page.text)
    stop = re.search(r'hx-post="([^"]+/stop)"', page.text)
    assert events and stop, page.text
    return page.text, base_url + events.group(1), base_url + stop.group(1)


def ids(frames: list[Frame]) -> list[int]:
    return [int(frame.id or 0) for frame in frames]


def test_the_page_is_the_apps_own_with_the_answer_shell_and_what_it_needs(example: tuple[str, str]) -> None:
    base_url, _ = example
    with httpx.Client(timeout=10) as client:
        html, events_url, _ = open_page(client, base_url)
        assert "<h1>My app</h1>" in html
        assert '<article class="answer"' in html and 'hx-sse:close="done"' in html
        assert client.cookies.get(OWNER_COOKIE)
        for asset in ("vendor/htmx-4.0.1.min.js", "vendor/hx-sse-4.0.1.min.js", "markdown.css", "pygments.css"):
            # Linked at its versioned URL, where a browser keeps it for a year; anywhere else revalidated.
            link = re.search(rf'"(/folyam/static/{re.escape(asset)}\?v=[0-9a-f]{{12}})"', html)
            assert link, html
            kept = client.get(base_url + link.group(1))
            assert kept.status_code == 200 and kept.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert kept.content == (ROOT / "static" / asset).read_bytes()
            for url in (f"/folyam/static/{asset}", f"/folyam/static/{asset}?v=000000000000"):
                bare = client.get(base_url + url)
                assert bare.status_code == 200 and bare.headers["cache-control"] == "no-cache"
        missing = client.get(f"{base_url}/folyam/static/missing.css?v=000000000000")
        assert missing.status_code == 404 and missing.headers["cache-control"] == "no-cache"
        read_events(client, events_url)


def test_the_answer_streams_as_fragments_then_timing_then_done(example: tuple[str, str]) -> None:
    base_url, question = example
    with httpx.Client(timeout=10) as client:
        _, events_url, _ = open_page(client, base_url)
        _, frames = read_events(client, events_url)

    assert ids(frames) == sorted(set(ids(frames)))
    assert len(frames) > 10  # streamed, not sent at once
    assert answer_html(frames) == str(PIPELINE.render(demo_answer(question)))
    assert '<dl class="timing">' in frames[-2].data and "<dt>First token</dt>" in frames[-2].data
    assert frames[-1].event == "done" and [f.event for f in frames].count("done") == 1


def test_a_reconnect_with_last_event_id_resumes_without_repeating(example: tuple[str, str]) -> None:
    base_url, question = example
    with httpx.Client(timeout=10) as client:
        _, events_url, _ = open_page(client, base_url)
        first = read_some(client, events_url, 5)  # then the connection drops
        _, rest = read_events(client, events_url, last_event_id=first[-1].id)

    assert rest and min(ids(rest)) > max(ids(first))
    assert answer_html(first + rest) == str(PIPELINE.render(demo_answer(question)))
    assert rest[-1].event == "done"


def test_another_browser_can_neither_read_nor_stop_the_answer(example: tuple[str, str]) -> None:
    base_url, _ = example
    with httpx.Client(timeout=10) as owner, httpx.Client(timeout=10) as other:
        _, events_url, stop_url = open_page(owner, base_url)
        other.get(base_url + "/")  # a browser with an owner cookie of its own
        assert other.cookies.get(OWNER_COOKIE) != owner.cookies.get(OWNER_COOKIE)

        assert other.get(events_url).status_code == 404
        assert other.post(stop_url).status_code == 404
        assert httpx.get(events_url).status_code == 404  # and one with no cookie at all
        assert httpx.get(events_url, cookies={OWNER_COOKIE: "x" * 43}).status_code == 404
        _, frames = read_events(owner, events_url)
        assert "Stopped" not in frames[-2].data


def test_stop_ends_the_answer_with_a_notice_and_its_timing(example: tuple[str, str]) -> None:
    base_url, question = example
    with httpx.Client(timeout=10) as client:
        _, events_url, stop_url = open_page(client, base_url)
        read_some(client, events_url, 3)

        assert client.post(stop_url).status_code == 204
        _, frames = read_events(client, events_url)

    status = frames[-2].data
    assert "Stopped" in status and '<dl class="timing">' in status
    assert frames[-1].event == "done"
    assert len(answer_html(frames)) < len(str(PIPELINE.render(demo_answer(question))))


def test_an_unknown_answer_is_not_found(example: tuple[str, str]) -> None:
    base_url, _ = example
    with httpx.Client(timeout=10) as client:
        client.get(base_url + "/")
        assert client.get(f"{base_url}/folyam/answers/nope/events").status_code == 404
        assert client.post(f"{base_url}/folyam/answers/nope/stop").status_code == 404


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_runs_with_one_command(name: str) -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    with subprocess.Popen(
        [sys.executable, f"examples/{name}.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as server:
        try:
            page = wait_until_serving(f"http://127.0.0.1:{port}/", server)
            assert page.status_code == 200 and "hx-sse:connect" in page.text
        finally:
            server.terminate()
            server.wait(10)
