"""With JavaScript off, asking still works: the form posts, the browser is sent to the conversation's own
URL, and the answer streams in as a page there."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from folyam.providers.demo import demo_answer
from tests.browser.conftest import ANSWER_TIMEOUT_MS


@pytest.mark.browser
def test_a_question_is_answered_without_javascript(browser: Browser, paced_server: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{paced_server}/")
        page.fill("textarea[name=query]", "Rivers without scripts?")
        page.get_by_role("button", name="Ask").click()
        expect(page.locator(".answer .timing")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        # A plain POST, redirected to the conversation's URL, which streams while the answer is written.
        assert re.search(r"/chat/[A-Za-z0-9_-]+\?wait=[A-Za-z0-9_-]+$", page.url), page.url
        heading = demo_answer("Rivers without scripts?").splitlines()[0].removeprefix("## ")
        expect(page.locator(".answer__body h2")).to_have_text(heading)
        expect(page.locator(".answer__body pre.highlight")).to_have_count(1)
        expect(page.locator(".message--user .message__text")).to_have_text("Rivers without scripts?")
        # The fresh composer on that page posts the next question into the same conversation.
        assert "/chat/" in (page.locator("#composer").get_attribute("action") or "")
    finally:
        context.close()
