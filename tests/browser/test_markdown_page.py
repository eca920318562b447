"""Markdown answers in a real browser: hostile markdown stays inert and loads nothing, finished blocks
appear while the answer streams, the copy button copies a code block, and screen readers hear only
the finished blocks."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from folyam.markdown import LINK_REL
from tests.browser.conftest import (
    ANSWER_TIMEOUT_MS,
    CSP_RECORDER,
    HitRecorder,
    PageEvents,
    ask,
    assert_answer_is_rendering_of,
    open_chat,
)
from tests.support.fake_upstream import FakeUpstream, Script

pytestmark = pytest.mark.browser

HX_PARTIAL_TITLE = "<hx-partial hx-target=body hx-swap=innerHTML>pwned</hx-partial>"

# One evaluation per observation, so everything in it belongs to the same moment.
OBSERVE_MARKDOWN = """() => {
  const content = document.querySelector(".answer__content");
  const body = document.querySelector(".answer__body");
  const tail = document.querySelector(".answer__tail");
  return {
    done: document.querySelector(".answer .timing") !== null,
    text: content ? content.textContent : "",
    bodyBlocks: body ? [...body.children].map((e) => e.className || e.localName) : [],
    bodyHeading: body !== null && body.querySelector("h1") !== null,
    tailText: tail ? tail.textContent : "",
    tailCode: tail !== null && tail.querySelector("pre.highlight code") !== null,
    tailCodeHighlighted: tail !== null && tail.querySelector("pre.highlight code span") !== null,
  };
}"""


def watch_answer(page: Page) -> list[dict[str, Any]]:
    """Observe the answer every 20 ms until the timing fragment arrives; returns the observations."""
    observations: list[dict[str, Any]] = []
    deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000
    while True:
        seen = page.evaluate(OBSERVE_MARKDOWN)
        if seen["done"]:
            return observations
        observations.append(seen)
        assert time.monotonic() < deadline, f"the answer did not finish; last seen: {seen}"
        page.wait_for_timeout(20)


def test_hostile_markdown_stays_inert_and_loads_nothing(
    page: Page,
    page_events: PageEvents,
    upstream: FakeUpstream,
    openai_paced_server: str,
    hit_recorder: tuple[HitRecorder, str],
) -> None:
    recorder, tracker = hit_recorder
    chunks = [
        "# A perfectly normal answer\n\n",
        "<script>window.__pwned=1</script>\n\n",
        '<img src=x onerror="window.__pwned=2">\n\n',
        '<div hx-get="/boom" hx-trigger="load">boom</div>\n\n',
        "Try [click me](javascript:window.__pwned=3) or ",
        "[this](data:text/html,<script>window.__pwned=4</script>) or <javascript:window.__pwned=5>.\n\n",
        f"![track]({tracker}/pixel.png?leak=secret)\n\n",
        f"Do not follow [link]({tracker}/clicked).\n\n",
        "<style>body{display:none}</style>\n\n",
        '<a style="position:fixed;inset:0" href="https://example.org/cover">cover</a>\n\n',
        f'[t](https://example.org "{HX_PARTIAL_TITLE}")\n\n',
        '<hx-partial hx-target="body" hx-swap="innerHTML">pwned too</hx-partial>\n\n',
        "The end.",
    ]
    upstream.script(Script(chunks=chunks, delay=0.02))
    page.add_init_script(CSP_RECORDER)
    open_chat(page, openai_paced_server)

    ask(page, "Say something nasty in markdown")

    timing = page.locator(".answer .timing")
    expect(timing).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(timing).to_contain_text("fake-model")
    # Give a stray onerror, hx-trigger="load" or image fetch a moment, were there anything to fire it.
    page.wait_for_timeout(500)

    content = page.locator(".answer__content")
    assert_answer_is_rendering_of(page, "".join(chunks))
    expect(page.locator(".answer__body p").last).to_have_text("The end.")

    # Nothing ran, nothing was requested, nothing broke the CSP.
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    assert recorder.hits == []
    paths = page_events.request_paths
    assert "/boom" not in paths
    assert "/x" not in paths
    unexpected = [p for p in paths if p != "/" and not p.startswith(("/static/", "/chat/", "/generations/"))]
    assert unexpected == []
    assert page.evaluate("() => window.__csp") == []
    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []

    # The page is intact: no style hid it, no partial replaced it.
    expect(page.locator("body")).to_be_visible()
    expect(page.locator("#composer")).to_be_visible()
    expect(page.locator("#model-badge")).to_be_visible()
    expect(page.locator("hx-partial")).to_have_count(0)
    assert page.evaluate("() => getComputedStyle(document.body).display") != "none"

    # Raw HTML is text, shown as the model wrote it.
    for text in [
        "<script>window.__pwned=1</script>",
        '<img src=x onerror="window.__pwned=2">',
        '<div hx-get="/boom" hx-trigger="load">boom</div>',
        "<style>body{display:none}</style>",
        '<a style="position:fixed;inset:0" href="https://example.org/cover">cover</a>',
        '<hx-partial hx-target="body" hx-swap="innerHTML">pwned too</hx-partial>',
    ]:
        expect(content.get_by_text(text, exact=True)).to_be_visible()
    # Links to javascript: or data: are not links; their markdown stays visible as text.
    expect(content).to_contain_text("[click me](javascript:window.__pwned=3)")
    expect(content).to_contain_text("<javascript:window.__pwned=5>")
    expect(content.locator('a[href^="javascript" i], a[href^="data" i]')).to_have_count(0)
    # The only elements are markdown's own: no script, style, img, div with hx-*, style attributes.
    tags = page.evaluate("() => [...new Set([...document.querySelectorAll('.answer__body *')].map(e => e.localName))]")
    assert sorted(tags) == ["a", "h1", "p"]
    expect(content.locator("img, script, style, [style], [hx-get], [hx-trigger], [onerror]")).to_have_count(0)

    # The image is a link that shows where it points, and nothing fetched it.
    image_link = content.locator("a.image-link")
    expect(image_link).to_have_count(1)
    expect(image_link).to_have_text(f"image: track ({tracker}/pixel.png?leak=secret)")
    expect(image_link).to_have_attribute("href", f"{tracker}/pixel.png?leak=secret")
    expect(content.get_by_role("link", name="link", exact=True)).to_have_attribute("href", f"{tracker}/clicked")
    # The hx-partial in the title is an attribute's text, not markup.
    expect(content.get_by_role("link", name="t", exact=True)).to_have_attribute("title", HX_PARTIAL_TITLE)

    # Every link carries the same rel, whatever the model wrote.
    rels = page.evaluate("() => [...document.querySelectorAll('.answer__content a')].map(a => [a.href, a.rel])")
    assert len(rels) == 3, rels
    assert all(rel == LINK_REL for _, rel in rels), rels


def test_copy_button_copies_the_code_block(
    page: Page, page_events: PageEvents, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    code = 'def greet(name):\n    return f"Hello, {name} <&>"\t# tab\n\n\nprint(greet("world"))\n'
    upstream.script(Script(chunks=["Copy this:\n\n", "```python\n", code, "```\n\n", "Done."], delay=0.02))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=openai_paced_server)
    open_chat(page, openai_paced_server)

    ask(page, "Show me some code")
    expect(page.locator(".answer .timing")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)

    block = page.locator(".answer__body .codeblock")
    expect(block).to_have_count(1)
    expect(block.locator(".codeblock__lang")).to_have_text("python")
    assert block.locator("pre code").text_content() == code

    # By class: the button's accessible name changes with its label.
    button = block.locator("button.codeblock__copy")
    expect(button).to_have_text("Copy")
    button.click()
    expect(button).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == code
    # The label goes back after a moment.
    expect(button).to_have_text("Copy", timeout=5_000)

    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []


def test_markdown_renders_progressively(
    page: Page, page_events: PageEvents, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    chunks = [
        "# Progress report\n\n",
        "Some **bo",
        "ld** text and *ital",
        "ic* and `co",
        "de` too.\n\n",
        "- first item\n",
        "- second item\n\n",
        "| a | b |\n",
        "|---|:-:|\n",
        "| 1 | 2 |\n\n",
        "```python\n",
        "def f():\n",
        "    return 1\n",
        "```\n\n",
        "See [the reference][r].\n\n",
        "More text.\n\n",
        # A definition after its use: the finished blocks are sent again, once, with the link in them.
        "[r]: https://example.org/ref\n\n",
        "The end.",
    ]
    upstream.script(Script(chunks=chunks, delay=0.08))
    open_chat(page, openai_paced_server)

    ask(page, "Report your progress")
    observations = watch_answer(page)

    assert len(observations) >= len(chunks), f"too few observations to watch the answer: {len(observations)}"
    # Finished blocks appeared in the body while the answer was still streaming.
    assert any(o["bodyHeading"] for o in observations), observations
    assert any("table-scroll" in o["bodyBlocks"] and "codeblock" not in o["bodyBlocks"] for o in observations), (
        observations
    )
    # The open block was shown in the tail, its code unhighlighted until the block was finished.
    assert any("bo" in o["tailText"] for o in observations), observations
    assert any(o["tailCode"] for o in observations), observations
    assert not any(o["tailCodeHighlighted"] for o in observations), observations
    # Half-typed syntax never showed as raw markers.
    for marker in ["**", "`", "- first"]:
        raw = [o["text"] for o in observations if marker in o["text"]]
        assert raw == [], f"{marker!r} showed while streaming: {raw}"
    # Blocks were only ever added to the body (the reference re-sent them, in the same number).
    counts = [len(o["bodyBlocks"]) for o in observations]
    assert counts == sorted(counts), counts

    assert_answer_is_rendering_of(page, "".join(chunks))
    body = page.locator(".answer__body")
    expect(body.locator("h1")).to_have_text("Progress report")
    expect(body.locator("strong")).to_have_text("bold")
    expect(body.locator("em")).to_have_text("italic")
    expect(body.locator("ul > li")).to_have_count(2)
    expect(body.locator("table td.align-center")).to_have_text("2")
    expect(body.locator("pre.highlight span.k")).to_have_text(["def", "return"])
    expect(body.get_by_role("link", name="the reference")).to_have_attribute("href", "https://example.org/ref")
    assert "**" not in (page.locator(".answer__content").text_content() or "")

    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []


def test_only_finished_blocks_reach_screen_readers(
    page: Page, page_events: PageEvents, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    upstream.script(Script(chunks=["# Heading typed so far", "\n\nA paragraph.\n\n", "The end."], delay=0.8))
    open_chat(page, openai_paced_server)

    ask(page, "Talk to my screen reader")

    body = page.locator(".answer__body")
    tail = page.locator(".answer__tail")
    expect(body).to_have_attribute("aria-live", "polite")
    expect(body).to_have_attribute("aria-relevant", "additions")
    expect(tail).to_have_attribute("aria-hidden", "true")
    # The status is not a live region (its timing list would be read out); the page's announcer says
    # the answer started, and later a short end.
    expect(page.locator(".answer__status")).not_to_have_attribute("role", "status")
    expect(page.locator("#announcer")).to_have_attribute("role", "status")
    expect(page.locator("#announcer")).to_have_text("Answering…")

    # While the heading is the open block it is shown in the tail, hidden from the accessibility tree.
    page.wait_for_function(
        "() => document.querySelector('.answer__tail h1')?.textContent === 'Heading typed so far'", polling=20
    )
    heading = page.get_by_role("heading", name="Heading typed so far")
    expect(heading).to_have_count(0, timeout=200)
    # Once finished it moves to the live region, where it is exposed.
    expect(heading).to_have_count(1)
    expect(body.locator("h1")).to_have_text("Heading typed so far")

    expect(page.locator(".answer .timing")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    assert_answer_is_rendering_of(page, "# Heading typed so far\n\nA paragraph.\n\nThe end.")
    expect(page.get_by_role("paragraph").filter(has_text="The end.")).to_have_count(1)
    expect(tail).to_be_empty()

    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []


OBSERVE_TAIL = """() => {
  const tail = document.querySelector(".answer__tail") || document.createElement("div");  // (not yet there)
  return {
    done: document.querySelector(".answer .timing") !== null,
    items: tail.querySelectorAll(":scope > ol > li").length,
    rows: tail.querySelectorAll(":scope > .table-scroll > table > tbody > tr").length,
    code: (tail.querySelector("pre code") || {textContent: ""}).textContent.length,
    quoted: tail.querySelectorAll(":scope > blockquote > p").length,
  };
}"""


def test_long_blocks_grow_child_by_child_in_the_browser(
    page: Page, page_events: PageEvents, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    """A long list (with a code block in an item), a long table and a long quote stream token by token;
    htmx applies the small swaps inside the live tail, so each block grows there child by child and
    nothing shown so far is lost, and the finished answer is the one-shot render."""
    text = (
        "".join(f"{n}. Step {n}: run `cmd {n}` and **check** it\n" for n in range(1, 41))
        + "41. Then:\n   ```sh\n" + "".join(f"   echo {n} > out{n}\n" for n in range(60)) + "   ```\n\n"
        + "| Name | Value |\n|---|---:|\n" + "".join(f"| row {n} | *{n * 3}* |\n" for n in range(50)) + "\n"
        + "".join(f"> quoted paragraph {n}\n>\n" for n in range(20)) + "\nThe end."
    )  # fmt: skip
    upstream.script(Script(chunks=re.findall(r"\s*\S+|\s+", text), delay=0.002))
    open_chat(page, openai_paced_server)

    ask(page, "Long blocks, please")
    observations: list[dict[str, Any]] = []
    deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000
    while not (seen := page.evaluate(OBSERVE_TAIL))["done"]:
        observations.append(seen)
        assert time.monotonic() < deadline, f"the answer did not finish; last seen: {seen}"
        page.wait_for_timeout(15)

    for key, at_least in [("items", 30), ("rows", 30), ("code", 300), ("quoted", 10)]:
        counts = [o[key] for o in observations if o[key]]
        assert counts and max(counts) >= at_least, f"{key}: {counts}"
        # While its block is open, what the tail shows of it only grows.
        assert counts == sorted(counts), f"{key} went back: {counts}"
    assert_answer_is_rendering_of(page, text)
    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []
