"""The chat UI in Chromium: the conversation list, the keyboard, following the answer, the actions on an
answer, the theme, the phone layout, the model picker, no-JavaScript forms, and axe-core on every state.

These are about the page, not the deployment: they run against one process (the HTTP tests cover both)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from folyam import pages
from folyam.providers.demo import demo_answer
from tests.browser.conftest import (
    ANSWER_TIMEOUT_MS,
    DEFAULT_TIMEOUT_MS,
    PACED_SETTINGS,
    PageEvents,
    ask,
    open_chat,
    run_axe,
)
from tests.conftest import TEST_SETTINGS, form_fields, openai_settings
from tests.support.fake_upstream import FakeUpstream, ModelList, Script
from tests.support.servers import serve

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
# A long answer at a quick pace: it overflows the viewport while it streams for about 3 s.
FOLLOW_SETTINGS = dataclasses.replace(PACED_SETTINGS, demo_tokens_per_second=120)


@pytest.fixture(scope="module")
def ui_server() -> Iterator[str]:
    from app import create_app

    with serve(create_app(PACED_SETTINGS)) as url:
        yield url


@pytest.fixture(scope="module")
def ui_openai_server(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[str]:
    from app import create_app

    settings = dataclasses.replace(
        openai_settings(TEST_SETTINGS, fake_upstream[1], api_key="sk-test"), flush_interval=0.03
    )
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Any]:
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> Page:
        context = browser.new_context(**options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def wait_for_answer(page: Page, nth: int = 0) -> None:
    expect(page.locator(".answer").nth(nth).locator(".timing")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)


def active_id(page: Page) -> str:
    return str(page.evaluate("() => document.activeElement?.id || document.activeElement?.tagName"))


def test_keyboard_enter_sends_shift_enter_newlines_escape_stops(
    page: Page, page_events: PageEvents, ui_server: str
) -> None:
    open_chat(page, ui_server)
    box = page.locator("#composer-query")
    run_axe(page, "empty")
    box.click()
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    expect(box).to_have_value("line one\nline two")
    # Enter during an IME composition confirms the composition; it never sends.
    box.evaluate(
        "(el) => el.dispatchEvent(new KeyboardEvent('keydown',"
        " {key: 'Enter', isComposing: true, bubbles: true, cancelable: true}))"
    )
    expect(page.locator(".answer")).to_have_count(0)
    page.keyboard.press("Enter")

    # Sent: the box is empty and focused, the button is Stop, the live region says it started.
    expect(page.locator(".message__text")).to_have_text("line one\nline two")
    expect(box).to_have_value("")
    assert active_id(page) == "composer-query"
    expect(page.locator("#composer-action")).to_have_text("Stop")
    expect(page.locator("#announcer")).to_have_text("Answering…")
    expect(page.locator(".answer__body")).not_to_be_empty()
    run_axe(page, "streaming")

    # Enter while it streams sends nothing; Esc stops it, focus stays in the box.
    page.keyboard.type("a follow-up")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    status = page.locator(".answer__status")
    expect(status.locator(".notice__title")).to_have_text("Stopped")
    expect(status.locator(".notice")).to_have_class(re.compile(r"notice--note"))
    expect(status.locator("[role=alert]")).to_have_count(0)
    expect(page.locator("#composer-action")).to_have_text("Ask")
    expect(page.locator("#announcer")).to_have_text("Answer stopped")
    assert active_id(page) == "composer-query"
    expect(box).to_have_value("a follow-up")
    expect(page.locator(".answer")).to_have_count(1)
    run_axe(page, "stopped")
    assert page_events.unexpected_console_errors() == []


def test_stop_button_returns_focus_and_the_end_is_announced(page: Page, ui_server: str) -> None:
    open_chat(page, ui_server)
    ask(page, "Stop me")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator(".answer__status .notice__title")).to_have_text("Stopped")
    assert active_id(page) == "composer-query"

    ask(page, "Finish this one")
    wait_for_answer(page, 1)
    expect(page.locator("#announcer")).to_have_text(re.compile(r"^Answer finished in \d+\.\d s$"))
    run_axe(page, "finished")


def test_the_page_follows_the_answer_until_the_reader_scrolls_up(new_context: Any, browser: Browser) -> None:
    from app import create_app

    with serve(create_app(FOLLOW_SETTINGS)) as url:
        page = new_context(viewport={"width": 1280, "height": 600})
        open_chat(page, url)
        ask(page, "Long, please")
        at_bottom = "() => innerHeight + scrollY >= document.documentElement.scrollHeight - 60"
        # It overflows, and the page keeps up with it.
        page.wait_for_function("() => document.documentElement.scrollHeight > innerHeight * 1.5")
        page.wait_for_timeout(200)
        assert page.evaluate(at_bottom)
        expect(page.locator("#jump-latest")).to_be_hidden()

        page.mouse.wheel(0, -400)
        page.wait_for_timeout(300)
        position = page.evaluate("() => scrollY")
        expect(page.locator("#jump-latest")).to_be_visible()
        page.wait_for_timeout(400)
        assert page.evaluate("() => scrollY") == position  # not pulled down while reading

        page.locator("#jump-latest").click()
        page.wait_for_timeout(300)
        assert page.evaluate(at_bottom)
        expect(page.locator("#jump-latest")).to_be_hidden()
        wait_for_answer(page)
        page.wait_for_timeout(200)
        assert page.evaluate(at_bottom)
        # The composer stays in view at the bottom of the viewport.
        box = page.locator("#composer-query").bounding_box()
        assert box is not None and box["y"] + box["height"] <= 600


def test_sidebar_lists_renames_and_deletes(page: Page, page_events: PageEvents, ui_server: str) -> None:
    open_chat(page, ui_server)
    ask(page, "First conversation about rivers")
    wait_for_answer(page)
    entries = page.locator("#conversation-list .conversation__link")
    expect(entries).to_have_count(1)
    expect(entries.first).to_have_text("First conversation about rivers")
    expect(entries.first).to_have_attribute("aria-current", "page")
    first_url = page.url

    page.get_by_role("link", name="New chat").click()
    ask(page, "Second one, on lakes")
    wait_for_answer(page)
    expect(entries).to_have_text(["Second one, on lakes", "First conversation about rivers"])
    expect(entries.first).to_have_attribute("aria-current", "page")
    expect(entries.nth(1)).not_to_have_attribute("aria-current", "page")

    # Rename in place.
    page.get_by_role("link", name="Rename “First conversation about rivers”").click()
    title = page.locator(".rename-form__title")
    expect(title).to_be_focused()
    title.fill("Rivers")
    title.press("Enter")
    expect(entries).to_have_text(["Second one, on lakes", "Rivers"])

    # Delete another conversation: asked first; dismissing keeps it.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("link", name="Delete “Rivers”").click()
    expect(entries).to_have_count(2)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("link", name="Delete “Rivers”").click()
    expect(entries).to_have_text(["Second one, on lakes"])
    assert page.request.get(first_url).status == 404

    # Delete the open one: back to a new chat.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("link", name="Delete “Second one, on lakes”").click()
    expect(page).to_have_url(ui_server + "/")
    expect(page.locator(".conversation-list__empty")).to_be_visible()
    assert page_events.unexpected_console_errors() == []


def test_older_conversations_come_in_place_of_their_link(
    page: Page, page_events: PageEvents, ui_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "LIST_PAGE", 2)  # (the server runs in this process)
    open_chat(page, ui_server)
    for n in range(3):  # asked in the browser's session, not waiting for the answers
        fields = form_fields(page.request.get(ui_server + "/").text(), '<form id="composer"')
        action = fields.pop("action")
        asked = page.request.post(ui_server + action, form={**fields, "query": f"Question {n}"}, max_redirects=0)
        assert asked.status == 303
    page.reload()
    entries = page.locator("#conversation-list .conversation__link")
    expect(entries).to_have_text(["Question 2", "Question 1"])
    older = page.get_by_role("link", name="Older conversations")
    older.focus()
    page.keyboard.press("Enter")
    expect(entries).to_have_text(["Question 2", "Question 1", "Question 0"])
    expect(entries.nth(2)).to_be_focused()  # the keyboard goes on where the link was
    expect(older).to_have_count(0)  # that was all
    expect(page).to_have_url(ui_server + "/")  # in place: no navigation
    assert page_events.unexpected_console_errors() == []


def test_copy_regenerate_and_edit(new_context: Any, ui_server: str) -> None:
    page = new_context(permissions=["clipboard-read", "clipboard-write"])
    open_chat(page, ui_server)
    ask(page, "Copy me")
    wait_for_answer(page)
    first_id = page.locator(".answer").get_attribute("id")
    page.get_by_role("button", name="Copy", exact=True).last.click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == demo_answer("Copy me")

    page.get_by_role("button", name="Regenerate").click()
    expect(page.locator(".answer")).to_have_count(1)
    expect(page.locator(".answer")).not_to_have_id(first_id or "")
    wait_for_answer(page)
    expect(page.locator(".message__text")).to_have_text("Copy me")

    page.get_by_role("link", name="Edit this question").click()
    editor = page.locator("#edit-query")
    expect(editor).to_have_value("Copy me")
    editor.fill("Edited question")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message__text")).to_have_text("Edited question")
    wait_for_answer(page)
    expect(page.locator(".answer")).to_have_count(1)
    page.reload()
    expect(page.locator(".message__text")).to_have_text("Edited question")


def test_retry_after_an_error_and_the_error_state_is_accessible(
    page: Page, ui_openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(fault="status", status=400), Script(chunks=["Worked ", "this time."]))
    open_chat(page, ui_openai_server)
    ask(page, "Fail first")
    notice = page.locator(".answer__status .notice--error")
    expect(notice).to_have_attribute("role", "alert")
    run_axe(page, "error")
    page.get_by_role("button", name="Retry").click()
    wait_for_answer(page)
    expect(page.locator(".answer__body")).to_have_text("Worked this time.")
    expect(page.locator(".answer__status .notice")).to_have_count(0)


def test_model_picker_and_instructions_belong_to_the_conversation(
    page: Page, fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream
) -> None:
    from app import create_app

    upstream.models = ModelList(ids=["fake-model", "other-model"])
    upstream.script(Script(chunks=["ok"]), Script(chunks=["ok again"]))
    with serve(create_app(openai_settings(TEST_SETTINGS, fake_upstream[1], api_key="sk-test"))) as server:
        _pick_model_and_instructions(page, server, upstream)


def _pick_model_and_instructions(page: Page, ui_openai_server: str, upstream: FakeUpstream) -> None:
    open_chat(page, ui_openai_server)
    picker = page.get_by_label("Model", exact=True)
    expect(picker).to_have_value("fake-model")
    picker.select_option("other-model")
    page.get_by_text("Instructions", exact=True).click()
    page.get_by_label("Instructions for the model (system prompt)").fill("Answer like a pirate.")
    ask(page, "Hello?")
    wait_for_answer(page)
    sent = upstream.requests[-1].body
    assert sent["model"] == "other-model"
    assert sent["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
    page.reload()
    expect(page.get_by_label("Model", exact=True)).to_have_value("other-model")
    expect(page.get_by_label("Instructions for the model (system prompt)")).to_have_value("Answer like a pirate.")
    ask(page, "Again?")
    wait_for_answer(page, 1)
    assert upstream.requests[-1].body["model"] == "other-model"
    assert upstream.requests[-1].body["messages"][0]["content"] == "Answer like a pirate."


def test_dark_theme_toggle_is_remembered_without_a_flash(new_context: Any, ui_server: str) -> None:
    page = new_context()
    open_chat(page, ui_server)
    ask(page, "Code, please")
    wait_for_answer(page)
    light_code = page.evaluate(
        "() => getComputedStyle(document.querySelector('pre.highlight, .highlight')).backgroundColor"
    )
    page.get_by_role("button", name="Dark").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page.get_by_role("button", name="Dark")).to_have_attribute("aria-pressed", "true")
    background = page.evaluate("() => getComputedStyle(document.documentElement).backgroundColor")
    assert background == "rgb(23, 24, 26)"
    dark_code = page.evaluate(
        "() => getComputedStyle(document.querySelector('pre.highlight, .highlight')).backgroundColor"
    )
    assert dark_code != light_code
    run_axe(page, "dark")
    # The server renders the theme: the very first paint of a new page is already dark.
    response = page.request.get(page.url)
    assert '<html lang="en" data-theme="dark">' in response.text()

    # With no choice made, the system's preference applies.
    system_dark = new_context(color_scheme="dark")
    open_chat(system_dark, ui_server)
    assert system_dark.evaluate("() => getComputedStyle(document.documentElement).backgroundColor") == "rgb(23, 24, 26)"


def test_phone_layout(new_context: Any, ui_server: str) -> None:
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    open_chat(page, ui_server)
    badge = page.locator("#model-badge").bounding_box()
    assert badge is not None and badge["height"] <= 32  # the demo notice is one compact line
    ask(page, "On a phone")
    expect(page.locator("#composer-action")).to_have_text("Stop")
    small = page.evaluate(TAP_TARGETS)
    assert small == [], small
    wait_for_answer(page)
    page.wait_for_timeout(200)
    composer = page.locator("#composer-query").bounding_box()
    assert composer is not None and composer["y"] + composer["height"] <= PHONE["height"]
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    small = page.evaluate(TAP_TARGETS)
    assert small == [], small
    run_axe(page, "phone")

    # The list is a drawer: closed, then opened by the ☰ link, its entries full-size targets.
    drawer = page.locator("#conversations")
    expect(drawer).to_be_hidden()
    page.get_by_role("link", name="Conversations").click()
    expect(drawer).to_be_visible()
    entry = page.locator(".conversation__link").first.bounding_box()
    assert entry is not None and entry["height"] >= 44
    small = page.evaluate(TAP_TARGETS)
    assert small == [], small
    page.get_by_role("link", name="Close the conversation list").click()
    expect(drawer).to_be_hidden()


# Every visible control at least 44 by 44 px: the page's and the answers' buttons (links inside running
# text, and the answers' table and code boxes, aside).
TAP_TARGETS = """() => [...document.querySelectorAll('button, a, select, summary, input:not([type=hidden]), textarea')]
  .filter((el) => !(el.closest('.answer__content') && el.tagName === 'A'))
  .filter((el) => !el.closest('.visually-hidden') && !el.classList.contains('skip-link'))
  .filter((el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && r.right > 0 && r.left < innerWidth; })
  .map((el) => { const r = el.getBoundingClientRect();
    return {el: el.outerHTML.slice(0, 80), w: r.width, h: r.height}; })
  .filter((t) => t.w < 44 || t.h < 44)"""


def test_without_javascript_every_action_is_a_form(new_context: Any, ui_server: str) -> None:
    page = new_context(java_script_enabled=False)
    page.goto(ui_server + "/")
    page.fill("#composer-query", "No script here")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator(".timing")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    assert re.search(r"/chat/[A-Za-z0-9_-]+\?wait=", page.url)
    conversation = page.url.split("?")[0]
    page.reload()  # the address bar's URL opens again
    expect(page.locator(".message__text")).to_have_text("No script here")

    page.get_by_role("button", name="Regenerate").click()
    expect(page.locator(".timing")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator(".answer")).to_have_count(1)

    page.get_by_role("link", name="Edit this question").click()
    page.fill("#edit-query", "Edited without script")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".timing")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator(".message__text")).to_have_text("Edited without script")

    # The title stays the conversation's first question as first asked (or as renamed).
    page.get_by_role("link", name="Rename “No script here”").click()
    page.fill(".rename-form__title", "Renamed")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(conversation)
    expect(page.locator(".conversation__link")).to_have_text(["Renamed"])

    page.get_by_role("button", name="Dark").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page).to_have_url(conversation)

    page.get_by_role("link", name="Delete “Renamed”").click()
    expect(page.get_by_role("heading", name="Delete conversation")).to_be_visible()
    page.get_by_role("button", name="Delete “Renamed”").click()
    expect(page).to_have_url(ui_server + "/")
    expect(page.locator(".conversation__link")).to_have_count(0)


def test_long_answer_with_code_and_tables_is_accessible(
    page: Page, ui_openai_server: str, upstream: FakeUpstream
) -> None:
    rows = "\n".join(f"| row {i} | {'word ' * 6}| `code_{i}` |" for i in range(30))
    code = "\n".join(
        f"    value_{i} = compute({i}, 'a long argument that scrolls sideways in the block')" for i in range(30)
    )
    text = (
        f"# Report\n\n| name | description | code |\n|---|---|---|\n{rows}\n\n```python\ndef f():\n{code}\n```\n\nDone."
    )
    upstream.script(Script(chunks=[text[i : i + 40] for i in range(0, len(text), 40)]))
    open_chat(page, ui_openai_server)
    ask(page, "A long report")
    wait_for_answer(page)
    run_axe(page, "long answer with code and tables")
