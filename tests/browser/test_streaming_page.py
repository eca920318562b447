"""The chat page in a real browser: htmx posts the question, the SSE extension swaps each streamed
fragment into the answer, and nothing the model says is ever run as markup or breaks the CSP."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest
from playwright.sync_api import Page, expect

from folyam.providers.demo import demo_answer
from folyam.security import CONTENT_SECURITY_POLICY
from tests.browser.conftest import (
    ANSWER_TIMEOUT_MS,
    CSP_RECORDER,
    PageEvents,
    ask,
    assert_answer_is_rendering_of,
    open_chat,
)
from tests.support.fake_upstream import FakeUpstream, Script

pytestmark = pytest.mark.browser

# Read in one evaluation, so the lengths and the timing's presence belong to the same moment. The
# content is what a reader sees: the finished blocks (body) and the open last block (live tail).
OBSERVE_ANSWER = """() => {
  const content = document.querySelector(".answer__content");
  const body = document.querySelector(".answer__body");
  const done = document.querySelector(".answer .timing") !== null;
  return {
    content: content ? content.textContent.length : -1,
    body: body ? body.textContent.length : -1,
    done,
  };
}"""


def test_demo_answer_streams_into_the_page(page: Page, page_events: PageEvents, paced_server: str) -> None:
    question = "How does streaming HTML over SSE work?"
    open_chat(page, paced_server)
    expect(page.locator("#model-badge")).to_contain_text("Demo model")
    first_request_id = page.locator("#composer input[name=request_id]").input_value()
    messages_url = page.locator("#composer").get_attribute("hx-post") or ""
    # Survives only if the page is never reloaded.
    page.evaluate("() => { window.__same_document = true; }")

    ask(page, question)

    # Watch the answer while it streams, until the timing fragment closes it.
    contents: list[int] = []
    bodies: list[int] = []
    deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000
    while True:
        seen = page.evaluate(OBSERVE_ANSWER)
        if seen["done"]:
            break
        contents.append(seen["content"])
        bodies.append(seen["body"])
        assert time.monotonic() < deadline, f"the answer did not finish; content lengths seen: {contents}"
        page.wait_for_timeout(40)

    # The finished answer is the one-shot markdown render of the demo text, and the tail is empty.
    assert_answer_is_rendering_of(page, demo_answer(question))
    expect(page.locator(".answer__body h2")).to_have_text(f"About “{question}”")
    expect(page.locator(".answer__body pre.highlight span.k").first).to_be_visible()
    final_length = len(page.locator(".answer__content").text_content() or "")

    assert len(contents) >= 3, f"the answer finished before it could be watched: {contents}"
    partial_lengths = sorted({n for n in contents if 0 < n < final_length})
    assert len(partial_lengths) >= 3, f"the answer did not grow in at least three steps: {contents}"
    # Finished blocks are only ever appended.
    assert bodies == sorted(bodies), f"the body shrank while streaming: {bodies}"
    assert any(0 < n < final_length for n in bodies), f"no block was finished before the end: {bodies}"
    # The text never shrinks: a table's header line waits for its delimiter row instead of showing as a
    # paragraph, pipes and all, first. Each swap is atomic, so no step goes backwards.
    drops = [(a, b) for a, b in pairwise(contents) if b < a]
    assert drops == [], f"the answer text shrank: {contents}"

    timing = page.locator(".answer .timing")
    expect(timing).to_be_visible()
    expect(timing).to_contain_text("First token")
    expect(timing).to_contain_text("tokens/s")
    expect(timing).to_contain_text("folyam-demo")
    expect(page.locator(".answer__progress")).to_have_count(0)

    thread = page.locator("#thread")
    expect(thread.locator(".message--user .message__text")).to_have_text(question)
    expect(thread.locator(".answer")).to_have_count(1)

    # The server swapped in a fresh composer: empty, with a new request id, on the same page, whose
    # address is now the conversation's own (pushed, not navigated to).
    expect(page.locator("textarea[name=query]")).to_have_value("")
    assert page.locator("#composer input[name=request_id]").input_value() != first_request_id
    assert messages_url.startswith("/chat/") and messages_url.endswith("/messages"), messages_url
    assert page.url == paced_server + messages_url.removesuffix("/messages")
    assert page.evaluate("() => window.__same_document") is True

    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []


def test_csp_header_holds_and_a_streamed_answer_violates_nothing(
    page: Page, page_events: PageEvents, paced_server: str
) -> None:
    page.add_init_script(CSP_RECORDER)
    response = page.goto(f"{paced_server}/")
    assert response is not None and response.ok
    policy = response.headers.get("content-security-policy")
    assert policy == CONTENT_SECURITY_POLICY
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    expect(page.locator("#composer")).to_have_attribute("data-htmx-powered", "true")

    ask(page, "Is the page strict about scripts?")
    expect(page.locator(".answer .timing")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)

    assert page.evaluate("() => window.__csp") == []
    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []

    # The detectors do see a violation: an inline script is blocked, and both channels report it.
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.__inline = 1";
          document.body.append(script);
        }"""
    )
    page.wait_for_function("() => window.__csp.length > 0")
    assert page.evaluate("() => typeof window.__inline") == "undefined"
    assert any("Content Security Policy" in e.text for e in page_events.unexpected_console_errors())


def test_whitespace_only_question_shows_the_error_and_adds_nothing(
    page: Page, page_events: PageEvents, paced_server: str
) -> None:
    open_chat(page, paced_server)
    # `required` is satisfied by whitespace, so the form is posted and the server says no.
    ask(page, "   ")

    expect(page.locator("#composer-error")).to_contain_text("Nothing to ask")
    expect(page.locator("#composer-error .notice--error")).to_have_attribute("role", "alert")
    expect(page.locator("#thread > *")).to_have_count(0)
    # Only the error slot changed: the person's text is still there, and the page did not navigate.
    expect(page.locator("textarea[name=query]")).to_have_value("   ")
    assert page.url == f"{paced_server}/"

    assert not any(path.startswith("/generations/") for path in page_events.request_paths)
    assert page_events.page_errors == []
    # Chromium logs the 422 answer itself as a failed load; nothing else may go wrong.
    posts = {path for path in page_events.request_paths if path.endswith("/messages")}
    assert len(posts) == 1
    assert page_events.unexpected_console_errors(*posts) == []


def test_hostile_upstream_text_stays_text(
    page: Page, page_events: PageEvents, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    chunks = [
        "Here goes: ",
        "<script>window.__pwned=1</script>",
        '<img src=x onerror="window.__pwned=2">',
        '<div hx-get="/boom" hx-trigger="load">x</div>',
        "\n\nevent: done\ndata: x\n\n",
        "tail text",
    ]
    upstream.script(Script(chunks=chunks, delay=0.05))
    open_chat(page, openai_paced_server)
    expect(page.locator("#model-badge")).to_contain_text("fake-model")

    ask(page, "Say something nasty")

    # The timing comes last: the injected `event: done` did not end the stream early.
    timing = page.locator(".answer .timing")
    expect(timing).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(timing).to_contain_text("fake-model")
    # Give a stray onerror or hx-trigger="load" a moment to fire, were there any element to fire it.
    page.wait_for_timeout(300)

    # Markdown with raw HTML off: every tag the model wrote is shown as text, inside paragraphs.
    assert_answer_is_rendering_of(page, "".join(chunks))
    body = page.locator(".answer__body")
    expect(body).to_contain_text("Here goes: <script>window.__pwned=1</script>")
    expect(body).to_contain_text('<img src=x onerror="window.__pwned=2">')
    expect(body).to_contain_text('<div hx-get="/boom" hx-trigger="load">x</div>')
    expect(body.locator("p").last).to_have_text("tail text")
    assert page.evaluate("() => [...document.querySelectorAll('.answer__content *')].map(e => e.localName)") == [
        "div",  # the thinking slot (empty: this model did not think)
        "div",  # the body
        "p",
        "p",
        "p",
        "div",  # the tail
    ]
    assert page.evaluate("() => typeof window.__pwned") == "undefined"

    paths = page_events.request_paths
    assert "/boom" not in paths
    assert "/x" not in paths
    # The page, its static files, the post and the event stream: nothing the answer asked for.
    unexpected = [p for p in paths if p != "/" and not p.startswith(("/static/", "/chat/", "/generations/"))]
    assert unexpected == []
    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []

    [request] = upstream.requests
    assert request.body["model"] == "fake-model"
    assert request.headers["authorization"] == "Bearer sk-test"
