"""A reasoning model's answer in a real browser: its thinking streams into a block of its own, open while
it thinks and closed once the answer starts, never into the answer; a refusal and a cut-off say so."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ANSWER_TIMEOUT_MS, PageEvents, ask, assert_answer_is_rendering_of, open_chat, run_axe
from tests.support.corpus import shapes
from tests.support.fake_upstream import FakeUpstream, Script

pytestmark = pytest.mark.browser


def test_thinking_is_shown_open_then_closed_above_the_answer(
    page: Page, page_events: PageEvents, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    thinking = ["Let me ", "**think** ", "about it.\n\n", "A second ", "thought."]
    upstream.script(Script(reasoning=thinking, chunks=["The ", "answer."], delay=0.4))
    open_chat(page, openai_paced_server)
    ask(page, "Think first")

    block = page.locator("details.answer__thinking")
    expect(block.locator(".answer__thinking-body strong")).to_have_text("think", timeout=ANSWER_TIMEOUT_MS)
    expect(block).to_have_attribute("open", "")  # open while it thinks
    expect(block.locator("summary")).to_have_text("Thinking…")
    run_axe(page, "thinking")

    expect(page.locator(".answer .timing")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(block).not_to_have_attribute("open", "")  # closed once the answer started
    expect(block.locator("summary")).to_contain_text("Thought for")
    assert_answer_is_rendering_of(page, "The answer.")
    assert "think" not in (page.locator(".answer__body").text_content() or "")
    assert "think" not in (page.locator("template.answer__source").evaluate("t => t.content.textContent") or "")
    expect(page.locator(".answer .timing")).to_contain_text("Thinking")
    run_axe(page, "answered")

    block.locator("summary").click()  # the person can open it again
    expect(block.locator(".answer__thinking-body")).to_contain_text("A second thought.")
    page.reload()
    expect(block).not_to_have_attribute("open", "")  # from the store: closed, with its thinking
    expect(block.locator(".answer__thinking-body")).to_contain_text("A second thought.", use_inner_text=False)
    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []


def test_a_refusal_and_a_cut_off_answer_say_so(
    page: Page, page_events: PageEvents, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    upstream.script(
        Script(chunks=[], refusal=["I can't help ", "with that."], delay=0.05),
        Script(chunks=["Cut ", "short"], finish_reason="length", delay=0.05),
    )
    open_chat(page, openai_paced_server)
    ask(page, "Something forbidden")
    expect(page.locator(".answer .timing")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    refusal = page.locator(".answer__refusal")
    expect(refusal).to_have_text("The model declined to answer")
    body = page.locator(".answer__refusal + .answer__body")
    expect(body).to_have_text("I can't help with that.")
    assert body.evaluate("b => getComputedStyle(b).borderLeftStyle") == "solid"

    ask(page, "Something long")
    expect(page.locator(".answer .timing")).to_have_count(2, timeout=ANSWER_TIMEOUT_MS)
    notice = page.locator(".answer").last.locator(".notice--warning")
    expect(notice).to_contain_text("The answer reached the model's output limit")
    expect(page.locator(".answer").last.locator(".answer__body")).to_have_text("Cut short")
    expect(page.locator(".answer").last.get_by_role("button", name="Regenerate")).to_be_visible()
    run_axe(page, "refusal and cut-off, light")
    page.emulate_media(color_scheme="dark")
    run_axe(page, "refusal and cut-off, dark")
    assert page_events.page_errors == []


CORPUS_IN_THE_BROWSER = [
    "deepseek_reasoning_content",
    "ollama_think_tags_split",
    "mistral_thinking_parts",
    "azure_content_filter",
]


@pytest.mark.parametrize("name", CORPUS_IN_THE_BROWSER)
def test_recorded_streams_read_right_in_the_page(
    name: str, page: Page, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    """A handful of the recorded server shapes, replayed byte for byte, as a person sees them."""
    shape = next(shape for shape in shapes() if shape.name == name)
    upstream.script(shape.script(write_size=48))
    open_chat(page, openai_paced_server)
    ask(page, "Recorded")
    expect(page.locator(".answer .timing")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    assert_answer_is_rendering_of(page, shape.expect.text)
    thinking = page.locator("details.answer__thinking .answer__thinking-body")
    if shape.expect.reasoning:
        expect(thinking).to_contain_text(shape.expect.reasoning.split("\n")[0].strip(), use_inner_text=False)
    else:
        expect(thinking).to_have_count(0)
    if shape.expect.finish == "content_filter":
        expect(page.locator(".answer__status .notice--warning")).to_contain_text("content filter")
    run_axe(page, f"recorded stream {name}")
