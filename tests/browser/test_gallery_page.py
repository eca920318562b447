"""The component gallery in Chromium, light and dark: it opens at its top (no specimen's autofocus takes
the page away), loads nothing but itself and its static files (no answer connects to an event stream),
the specimens in shadow roots get the app's styles, and axe-core finds no violation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from folyam.gallery import GALLERY_PATH
from folyam.gallery_specimens import SHOWCASES
from tests.browser.conftest import PageEvents, run_axe
from tests.conftest import TEST_SETTINGS
from tests.support.servers import serve

pytestmark = pytest.mark.browser

# The page's background in each theme (folyam.css: --bg).
BACKGROUNDS = {"light": "rgb(247, 247, 245)", "dark": "rgb(23, 24, 26)"}


@pytest.fixture(scope="module")
def gallery_server() -> Iterator[str]:
    from app import create_app

    with serve(create_app(TEST_SETTINGS)) as url:
        yield url


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_gallery_in_each_theme(page: Page, page_events: PageEvents, gallery_server: str, theme: str) -> None:
    page.goto(f"{gallery_server}{GALLERY_PATH}?theme={theme}")
    expect(page.locator("html")).to_have_attribute("data-theme", theme)
    assert page.evaluate("() => getComputedStyle(document.documentElement).backgroundColor") == BACKGROUNDS[theme]

    # It opens at the top, its main element focused: the composers' autofocus does not scroll it away.
    expect(page.locator("main#gallery")).to_be_focused()
    assert page.evaluate("() => scrollY") == 0

    # Every state is there; the composers, each in its own shadow root, have their ids and styles.
    states = sum(len(showcase.specimens) for showcase in SHOWCASES)
    expect(page.locator(".gallery__specimen h3")).to_have_count(states)
    expect(page.locator("#composer-query")).to_have_count(4)
    stop = page.locator(".composer__stop").first
    assert stop.evaluate("(button) => getComputedStyle(button).minHeight") == "44px"
    assert stop.evaluate("(button) => getComputedStyle(button).backgroundColor") == page.evaluate(
        "() => getComputedStyle(document.documentElement).color"
    )
    # Code is highlighted in the theme's colours (pygments.css applies outside shadow roots only).
    keyword = page.locator("#specimen-code-block ~ .gallery__stage .highlight .k").first
    expect(keyword).to_be_visible()

    # Escape on the page does not press a specimen's Stop (static/folyam.js looks for the page's own).
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    assert page.url.endswith(f"{GALLERY_PATH}?theme={theme}")

    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []
    # Nothing but the page and its static files: no events URL, no other request.
    assert {path for path in page_events.request_paths if not path.startswith("/static/")} == {GALLERY_PATH}
    # Last: to read a shadow root's stylesheets axe copies them into <style> elements, which the page's CSP
    # refuses (console errors of axe's own, not the page's).
    run_axe(page, f"gallery, {theme}")


@pytest.fixture
def dark_system_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(color_scheme="dark")
    yield context.new_page()
    context.close()


def test_without_a_choice_it_follows_the_system_theme(dark_system_page: Page, gallery_server: str) -> None:
    dark_system_page.goto(gallery_server + GALLERY_PATH)
    expect(dark_system_page.locator("html[data-theme]")).to_have_count(0)
    background = dark_system_page.evaluate("() => getComputedStyle(document.documentElement).backgroundColor")
    assert background == BACKGROUNDS["dark"]
