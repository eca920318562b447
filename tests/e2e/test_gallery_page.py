"""The component gallery over HTTP, in both deployments: served to a visitor without a session, every
component's section and every state under its heading, nothing that would open an event stream."""

from __future__ import annotations

import re

import httpx

from folyam.gallery import GALLERY_PATH
from folyam.gallery_specimens import SHOWCASES


def test_the_gallery_shows_every_component_and_streams_nothing(demo_server: str) -> None:
    with httpx.Client(timeout=10) as visitor:  # no cookie: no session, no conversation
        response = visitor.get(demo_server + GALLERY_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    sections = dict(re.findall(r'<h2 id="([^"]+)">([^<]+)</h2>', html))
    assert list(sections.values()) == [showcase.title for showcase in SHOWCASES]
    for slug, title in sections.items():
        assert f'<a href="#{slug}">{title}</a>' in html  # in the contents
    states = re.findall(r'<h3 id="([^"]+)">', html)
    names = [shown.build.__name__ for showcase in SHOWCASES for shown in showcase.specimens]
    assert states == ["specimen-" + name.replace("_", "-") for name in names]
    # Streaming states are there, as markup only: no SSE connection, no events URL.
    assert html.count('<span class="answer__progress">Answering…</span>') >= 3
    tail = 'id="answer-streaming-table-tail" aria-hidden="true" inert><div class="table-scroll"'
    assert tail in html
    assert "hx-sse:" not in html
    assert re.search(r'="[^"]*/events\b', html) is None


def test_the_gallery_in_the_dark_theme(demo_server: str) -> None:
    dark = httpx.get(demo_server + GALLERY_PATH, params={"theme": "dark"}, timeout=10)
    assert dark.status_code == 200
    assert '<html lang="en" data-theme="dark">' in dark.text
    assert '<meta name="color-scheme" content="dark">' in dark.text
