"""Resilience in a real browser: Stop ends an answer (and its upstream request) and keeps what arrived,
a network drop mid-answer is healed by the SSE extension's reconnect with Last-Event-ID, a reload
mid-answer picks the answer up from the server's state, and a finished answer has neither a Stop
button nor anything to reconnect to."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import (
    ANSWER_TIMEOUT_MS,
    PageEvents,
    ask,
    assert_answer_is_rendering_of,
    open_chat,
)
from tests.support.fake_upstream import FakeUpstream, Script
from tests.support.tcp_proxy import tcp_proxy

pytestmark = pytest.mark.browser

EVENTS_PATH = re.compile(r"^/generations/[A-Za-z0-9_-]+/events$")
CONVERSATION_PATH = r"/chat/[A-Za-z0-9_-]+"
# What htmx logs when the extension reports a dropped event stream (its htmx:sse:error event).
HTMX_DROPPED_STREAM = "htmx: htmx:sse:error: network error TypeError: network error"

# Read in one evaluation, so everything in it belongs to the same moment.
OBSERVE = """() => {
  const content = document.querySelector(".answer__content");
  const body = document.querySelector(".answer__body");
  return {
    text: content ? content.textContent : "",
    body: body ? body.innerHTML : "",
    done: document.querySelector(".answer .timing") !== null,
  };
}"""


def paragraphs(count: int, words: int = 6) -> list[str]:
    """An answer as `count` * `words` chunks: numbered words, a blank line after every `words`, so
    finished blocks reach the body while the answer streams and every piece of text is unique."""
    return [f"p{p}w{w}" + ("\n\n" if w == words - 1 else " ") for p in range(count) for w in range(words)]


def wait_for_text(page: Page, chars: int) -> None:
    """Until the answer (body and live tail) shows at least `chars` characters."""
    page.wait_for_function(
        "(n) => (document.querySelector('.answer__content')?.textContent.length ?? 0) >= n", arg=chars, polling=20
    )


def chunks_received(page: Page) -> int:
    """How many text chunks the answer was made of, as its timing fragment says."""
    match = re.search(r"Chunks\s*(\d+)", page.locator(".answer .timing").inner_text())
    assert match, page.locator(".answer .timing").inner_text()
    return int(match.group(1))


@dataclass(frozen=True)
class StreamRequest:
    """One request the page made for an answer's event stream."""

    after: str | None
    last_event_id: str | None


def record_stream_requests(page: Page) -> list[StreamRequest]:
    """Every event-stream request the page makes from now on: the first connection (with ?after= on
    a reloaded page) and each reconnect (with Last-Event-ID)."""
    seen: list[StreamRequest] = []

    def on_request(request: Request) -> None:
        url = urlsplit(request.url)
        if EVENTS_PATH.match(url.path):
            after = parse_qs(url.query).get("after", [None])[0]
            seen.append(StreamRequest(after, request.headers.get("last-event-id")))

    page.on("request", on_request)
    return seen


def watch(page: Page, observations: list[dict[str, Any]], until: Callable[[dict[str, Any]], bool]) -> None:
    """Observe the answer every 20 ms, appending to `observations`, until `until` holds for one."""
    deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000
    while not until(seen := page.evaluate(OBSERVE)):
        observations.append(seen)
        assert time.monotonic() < deadline, f"the answer did not reach the state awaited; last seen: {seen}"
        page.wait_for_timeout(20)
    observations.append(seen)


def assert_only_ever_extended(observations: list[dict[str, Any]], final_text: str) -> None:
    """Every observed state of the answer (finished blocks and live tail) shows a prefix of its final
    text: nothing was shown twice, skipped or out of order on the way, not even for a moment."""
    final = " ".join(final_text.split())
    shown = [" ".join(o["text"].split()) for o in observations]
    assert [text for text in shown if not final.startswith(text)] == []
    assert [len(text) for text in shown] == sorted(len(text) for text in shown)


# -- Stop ------------------------------------------------------------------------------------------


def test_stop_keeps_the_partial_answer_and_closes_the_upstream(
    page: Page, page_events: PageEvents, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    # 480 chunks, 40 ms apart: about 19 s if nobody stopped it.
    chunks = paragraphs(80)
    upstream.script(Script(chunks=chunks, delay=0.04))
    open_chat(page, openai_paced_server)
    ask(page, "Talk until I stop you")

    wait_for_text(page, 60)
    shown = page.evaluate(OBSERVE)
    assert not shown["done"]
    stop = page.locator("#composer .composer__stop")
    expect(stop).to_have_text("Stop")
    clicked_at = time.monotonic()
    stop.click()

    # The answer ends with the Stopped notice and the timing; the button and the progress text go.
    status = page.locator(".answer__status")
    expect(status.locator(".notice__title")).to_have_text("Stopped")
    # A stop the person asked for is a neutral note, not an error (no alert).
    expect(status.locator(".notice--note")).to_be_visible()
    expect(status.locator("[role=alert]")).to_have_count(0)
    expect(status.locator(".timing")).to_have_count(1)
    expect(status.locator(".timing")).to_contain_text("fake-model")
    expect(status.locator(".timing")).to_contain_text("First token")
    expect(page.locator("#composer .composer__stop")).to_have_count(0)
    expect(page.locator(".answer__progress")).to_have_count(0)

    # What arrived is kept: it is exactly the one-shot render of the chunks received, which begin
    # with what was on screen at the click and are far fewer than the upstream had to say.
    received = chunks_received(page)
    assert 0 < received < len(chunks) // 2, received
    assert_answer_is_rendering_of(page, "".join(chunks[:received]))
    final = page.evaluate(OBSERVE)
    assert " ".join(final["text"].split()).startswith(" ".join(shown["text"].split())), (shown, final)

    # Nothing is added afterwards.
    for _ in range(10):
        page.wait_for_timeout(50)
        assert page.evaluate(OBSERVE) == final

    # The upstream request was closed at once: the model stopped generating.
    [request] = upstream.requests
    deadline = time.monotonic() + 2
    while request.disconnected_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert request.disconnected_at is not None, "the upstream connection was not closed"
    assert request.disconnected_at - clicked_at < 1.0

    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []

    # The conversation's page shows the stopped answer as it ended, with nothing left to stop or follow.
    expect(page).to_have_url(re.compile(f"^{re.escape(openai_paced_server)}{CONVERSATION_PATH}$"))
    response = page.reload()
    assert response is not None and response.ok
    assert "hx-sse:connect" not in response.text()
    expect(page.locator(".answer__status .notice__title")).to_have_text("Stopped")
    expect(page.locator(".answer .timing")).to_have_count(1)
    expect(page.locator("#composer .composer__stop")).to_have_count(0)
    assert_answer_is_rendering_of(page, "".join(chunks[:received]))
    assert len(upstream.requests) == 1


# -- A network cut ---------------------------------------------------------------------------------


def test_a_network_cut_mid_answer_is_healed_by_reconnecting(
    page: Page, page_events: PageEvents, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    # 120 chunks, 35 ms apart: about 4 s, time for two cuts and their reconnects (~0.5 s each).
    chunks = paragraphs(20)
    upstream.script(Script(chunks=chunks, delay=0.035))
    observations: list[dict[str, Any]] = []
    with tcp_proxy(openai_paced_server) as (proxy, base_url):
        open_chat(page, base_url)
        streams = record_stream_requests(page)
        ask(page, "Survive the network")

        # First cut: some text is on the page, much is still to come.
        watch(page, observations, lambda seen: len(seen["text"]) >= 40)
        assert not observations[-1]["done"], "the answer finished before the first cut"
        connections = proxy.connections
        assert proxy.cut() > 0
        length_at_cut = len(observations[-1]["text"])

        # The extension reconnects (about 0.5 s later) with Last-Event-ID and the answer goes on: the
        # cut connection can bring nothing more. Then a second cut.
        watch(page, observations, lambda seen: len(seen["text"]) >= length_at_cut + 40)
        assert len(streams) == 2, streams
        assert not observations[-1]["done"], "the answer finished before the second cut"
        assert proxy.cut() > 0

        watch(page, observations, lambda seen: bool(seen["done"]))
        page.wait_for_timeout(300)  # a duplicate replay, were there one, would land now

    # The answer is whole: nothing missing, nothing twice, one timing and no error.
    assert_answer_is_rendering_of(page, "".join(chunks))
    expect(page.locator(".answer .timing")).to_have_count(1)
    expect(page.locator(".answer__status .notice--error")).to_have_count(0)
    expect(page.locator(".answer")).to_have_count(1)
    assert chunks_received(page) == len(chunks)
    assert_only_ever_extended(observations, page.evaluate(OBSERVE)["text"])

    # Two reconnects, each new connection through the proxy, each resuming after the last event seen.
    assert proxy.connections > connections
    assert len(streams) == 3, streams
    first, *reconnects = streams
    assert first == StreamRequest(after=None, last_event_id=None)
    resumed_after = [int(s.last_event_id or 0) for s in reconnects]
    assert all(n > 0 for n in resumed_after), reconnects
    assert resumed_after == sorted(resumed_after), reconnects
    assert len(upstream.requests) == 1

    assert page_events.page_errors == []
    # Each cut is reported in the console, and only as what it is: htmx logs the htmx:sse:error event
    # the extension fires before it reconnects, and Chromium may log the event stream's broken
    # response as a failed load (net::ERR_INCOMPLETE_CHUNKED_ENCODING: the chunked body ended without
    # its last chunk). A failed reconnect, or any other error, would show up as one more.
    errors = page_events.console_errors
    dropped = [e for e in errors if e.text.startswith(HTMX_DROPPED_STREAM)]
    broken = [
        e
        for e in errors
        if e.text.startswith("Failed to load resource: net::ERR_") and EVENTS_PATH.match(urlsplit(e.url).path)
    ]
    assert len(dropped) == proxy.cuts, errors
    assert len(broken) <= proxy.cuts, errors
    assert [e for e in errors if e not in dropped and e not in broken] == []


# -- Reload ----------------------------------------------------------------------------------------


def test_reloading_mid_answer_continues_it_live(
    page: Page, page_events: PageEvents, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    # 120 chunks, 35 ms apart: about 4 s.
    chunks = paragraphs(20)
    upstream.script(Script(chunks=chunks, delay=0.035))
    question = "Keep going after a reload"
    open_chat(page, openai_paced_server)
    ask(page, question)

    expect(page).to_have_url(re.compile(f"^{re.escape(openai_paced_server)}{CONVERSATION_PATH}$"))
    # Wait for a finished block, so the server has a body so far to render.
    page.wait_for_function("() => document.querySelector('.answer__body')?.children.length >= 2", polling=20)
    streams = record_stream_requests(page)
    response = page.reload()

    # The server rendered the answer so far, set to resume after the events it includes.
    assert response is not None and response.ok
    html = response.text()
    connect = re.search(r'hx-sse:connect="/generations/[A-Za-z0-9_-]+/events\?after=(\d+)"', html)
    assert connect and int(connect.group(1)) > 0, html
    served_body = re.search(r'class="answer__body"[^>]*>(.*?)</div>\s*<div class="answer__tail"', html, re.S)
    assert served_body and "<p>" in served_body.group(1), html
    assert 'class="timing"' not in html and "Stop</button>" in html

    # It goes on growing live to the end.
    observations: list[dict[str, Any]] = []
    watch(page, observations, lambda seen: bool(seen["done"]))
    lengths = sorted({len(o["text"]) for o in observations if not o["done"]})
    assert len(lengths) >= 3, f"the answer did not grow live after the reload: {lengths}"
    assert_answer_is_rendering_of(page, "".join(chunks))
    assert_only_ever_extended(observations, observations[-1]["text"])
    expect(page.locator(".answer .timing")).to_have_count(1)
    expect(page.locator("#composer .composer__stop")).to_have_count(0)

    # One exchange: the reload did not ask again.
    expect(page.locator("#thread .message--user .message__text")).to_have_text([question])
    expect(page.locator("#thread .answer")).to_have_count(1)
    assert len(upstream.requests) == 1
    assert streams[0] == StreamRequest(after=connect.group(1), last_event_id=None), streams

    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []


# -- A finished answer -----------------------------------------------------------------------------


def test_a_finished_answer_has_no_stop_button_and_reloads_as_it_ended(
    page: Page, page_events: PageEvents, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    chunks = paragraphs(2)
    upstream.script(Script(chunks=chunks, delay=0.01))
    open_chat(page, openai_paced_server)
    ask(page, "Short one")

    expect(page.locator(".answer .timing")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#composer .composer__stop")).to_have_count(0)
    expect(page.locator(".answer__progress")).to_have_count(0)
    assert_answer_is_rendering_of(page, "".join(chunks))

    expect(page).to_have_url(re.compile(f"^{re.escape(openai_paced_server)}{CONVERSATION_PATH}$"))
    streams = record_stream_requests(page)
    response = page.reload()
    assert response is not None and response.ok
    assert "hx-sse:connect" not in response.text()
    expect(page.locator(".answer .timing")).to_have_count(1)
    expect(page.locator(".answer .timing")).to_contain_text("fake-model")
    expect(page.locator("#composer .composer__stop")).to_have_count(0)
    expect(page.locator(".answer__progress")).to_have_count(0)
    expect(page.locator(".answer__status .notice--error")).to_have_count(0)
    assert_answer_is_rendering_of(page, "".join(chunks))
    page.wait_for_timeout(300)  # a connection, were anything to connect to, would be made by now
    assert streams == []

    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []
