"""Without JavaScript the composer posts normally, is redirected to the conversation's own URL (never one
that answers 405 when opened again), and the answer arrives there as a streamed HTML document."""

from __future__ import annotations

import re
import time

import httpx

from folyam.components import make_environment
from folyam.markdown import MarkdownPipeline
from folyam.providers.demo import demo_answer
from tests.conftest import composer_form
from tests.support.fake_upstream import FakeUpstream, Script

PIPELINE = MarkdownPipeline(make_environment())


def test_a_plain_form_post_streams_the_answer_as_a_page(openai_server: str, upstream: FakeUpstream) -> None:
    upstream.script(Script(chunks=["# Title\n\n", "First block.\n\n", "Second ", "block."], delay=0.3))
    with httpx.Client(timeout=10) as browser:  # no HX-Request header: a plain form post
        form = composer_form(browser, openai_server + "/")
        arrivals: list[tuple[float, str]] = []
        posted = browser.post(openai_server + form.pop("action"), data={**form, "query": "No JS?"})
        assert posted.status_code == 303
        started = time.monotonic()
        with browser.stream("GET", openai_server + posted.headers["location"]) as page:
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            for text in page.iter_text():
                arrivals.append((time.monotonic() - started, text))
    html = "".join(text for _, text in arrivals)

    # The page head and the question arrive before the answer is written; blocks follow as they finish.
    first_at, first = arrivals[0]
    assert "<!doctype html>" in first and "No JS?" in first and "<h1>Title</h1>" not in first
    assert arrivals[-1][0] - first_at > 0.4
    body = re.search(r'class="answer__body"[^>]*>(.*?)</div>\s*<div class="answer__tail"', html, re.S)
    assert body and body.group(1) == str(PIPELINE.render("# Title\n\nFirst block.\n\nSecond block."))
    assert '<dl class="timing">' in html and html.rstrip().endswith("</html>")
    assert "hx-sse:connect" not in html


def test_a_plain_form_post_in_a_conversation_shows_the_earlier_exchanges(demo_server: str) -> None:
    with httpx.Client(timeout=10, follow_redirects=True) as browser:
        form = composer_form(browser, demo_server + "/")
        action = form.pop("action")
        browser.post(demo_server + action, data={**form, "query": "first"}).raise_for_status()
        form = composer_form(browser, demo_server + action.removesuffix("/messages"))
        second = browser.post(demo_server + form.pop("action"), data={**form, "query": "second"})
    assert second.text.count('class="message message--user"') == 2
    assert second.text.count('<dl class="timing">') == 2
    assert str(PIPELINE.render(demo_answer("second"))) in second.text


def test_errors_without_javascript_are_pages(demo_server: str) -> None:
    with httpx.Client(timeout=10) as browser:
        form = composer_form(browser, demo_server + "/")
        empty = browser.post(demo_server + form.pop("action"), data={**form, "query": "  "})
        missing = browser.get(demo_server + "/chat/no-such-conversation")
    assert empty.status_code == 422
    assert empty.text.startswith("<!doctype html>") and "Nothing to ask" in empty.text
    assert missing.status_code == 404 and "<!doctype html>" in missing.text and "Not found" in missing.text


def test_without_javascript_the_finished_thinking_comes_before_the_answer(
    openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(reasoning=["Let me **think**.", "\n\nDone."], chunks=["The ", "answer."], delay=0.1))
    with httpx.Client(timeout=10, follow_redirects=True) as browser:
        form = composer_form(browser, openai_server + "/")
        html = browser.post(openai_server + form.pop("action"), data={**form, "query": "Think?"}).text
    thinking = re.search(r'<details class="answer__thinking">(.*?)</details>', html, re.S)
    assert thinking and "Thought for" in thinking.group(1)
    assert str(PIPELINE.render("Let me **think**.\n\nDone.")) in thinking.group(1)
    body = re.search(r'class="answer__body"[^>]*>(.*?)</div>\s*<div class="answer__tail"', html, re.S)
    assert body and body.group(1) == str(PIPELINE.render("The answer."))
    assert html.index("answer__thinking") < html.index("answer__body")
