"""The composition root: entry point, page, headers, static files."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app import create_app
from folyam.assets import IMMUTABLE, REVALIDATE
from folyam.models import ModelCatalog
from folyam.security import CONTENT_SECURITY_POLICY
from tests.conftest import TEST_SETTINGS, ask, openai_settings
from tests.support.app_process import clean_env
from tests.support.fake_upstream import FakeUpstream
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def run_entry_point(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str, str]:
    """Start `python app.py` and wait until it answers; returns the process, its URL line and the page."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    first_line = process.stdout.readline()
    deadline = time.monotonic() + 15
    while True:
        try:
            page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
            return process, first_line, page
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                process.wait()
                process.stdout.close()
                raise AssertionError(f"app.py did not start: {first_line}{process.stdout.read()}") from None
            time.sleep(0.1)


@pytest.mark.parametrize(
    ("extra_env", "args", "expected_line", "expected_page"),
    [
        ({}, (), "(offline demo model)", "Demo model"),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, ("--model", "llama3.2"), "(model llama3.2)", "llama3.2"),
    ],
)
def test_python_app_py_serves_and_prints_its_url(
    extra_env: dict[str, str], args: tuple[str, ...], expected_line: str, expected_page: str
) -> None:
    process, line, page = run_entry_point(clean_env(**extra_env), *args)
    try:
        assert line.startswith("Folyam is serving on http://127.0.0.1:")
        assert expected_line in line
        assert expected_page in page
        assert 'name="query"' in page
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
    if not extra_env:
        assert "Demo model" in page
    else:
        assert "Demo model" not in page


def test_every_response_carries_the_strict_csp(client: httpx.Client, demo_server: str) -> None:
    page = client.get(f"{demo_server}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    fragment = client.post(f"{demo_server}/chat/conv-test-0001/messages", data={"query": "q"})
    static = client.get(f"{demo_server}/static/vendor/htmx-4.0.1.min.js")
    events_url = ask(client, demo_server, "q")
    with client.stream("GET", events_url) as events:
        sse_headers = events.headers
    for headers in (page.headers, fragment.headers, static.headers, sse_headers):
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert headers["x-content-type-options"] == "nosniff"
    assert sse_headers["cache-control"] == "no-store"
    assert sse_headers["x-accel-buffering"] == "no"


def test_the_pages_static_files_are_kept_until_they_change(client: httpx.Client, demo_server: str) -> None:
    page = client.get(f"{demo_server}/")
    assert page.headers["cache-control"] == "no-store"
    links = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
    assert len(links) == 7  # the icon, three stylesheets, three scripts
    for link in links:
        path, _, query = link.partition("?")
        content = (ROOT / path.removeprefix("/")).read_bytes()
        assert query == f"v={hashlib.sha256(content).hexdigest()[:12]}"
        response = client.get(f"{demo_server}{link}")
        assert response.status_code == 200 and response.content == content
        assert response.headers["cache-control"] == IMMUTABLE
        # The same file at a URL that does not name this content: asked again each time it is used.
        for other in (path, f"{path}?v=0123456789ab"):
            assert client.get(f"{demo_server}{other}").headers["cache-control"] == REVALIDATE
    # An error at a current URL is not the file: never kept for a year.
    refused = client.post(f"{demo_server}{links[0]}")
    assert refused.status_code == 405 and refused.headers["cache-control"] == REVALIDATE


def test_the_page_has_no_inline_script_or_style(client: httpx.Client, demo_server: str) -> None:
    html = client.get(f"{demo_server}/").text
    assert "<style" not in html and " style=" not in html
    assert html.count("<script") == html.count('<script src="/static/') == 3
    assert 'hx-post="/chat/' in html and 'name="request_id"' in html


async def test_the_app_keeps_a_catalog_of_the_upstreams_models(
    fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream
) -> None:
    app = create_app(openai_settings(TEST_SETTINGS, fake_upstream[1]))
    async with app.lifespan():
        catalog: ModelCatalog = app.state.models
        assert await catalog.names() == ["fake-model", "fake-model-large"]
