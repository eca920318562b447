"""The apps under examples/ in Chromium: the answer streams into the app's own page and ends with its
timing; Stop stops it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from folyam.providers.demo import demo_answer
from tests.browser.conftest import ANSWER_TIMEOUT_MS, PageEvents, assert_answer_is_rendering_of
from tests.support.examples import EXAMPLES, run_example

pytestmark = pytest.mark.browser

OBSERVE = """() => ({
  body: document.querySelector(".answer__body").textContent.length
    + document.querySelector(".answer__tail").textContent.length,
  done: document.querySelector(".answer .timing") !== null,
})"""


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def example(
    request: pytest.FixtureRequest, wheel_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """An example app run with its one command, Folyam installed from its wheel in a fresh venv."""
    with run_example(wheel_python, request.param, tmp_path_factory.mktemp("example")) as url:
        yield url, EXAMPLES[request.param]


def test_the_answer_streams_into_the_apps_page_and_its_timing_appears(
    page: Page, page_events: PageEvents, example: tuple[str, str]
) -> None:
    base_url, question = example
    page.goto(base_url + "/")
    expect(page.locator("h1")).to_have_text("My app")

    lengths: list[int] = []
    deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000
    while not (seen := page.evaluate(OBSERVE))["done"]:
        lengths.append(seen["body"])
        assert time.monotonic() < deadline, "the answer never finished"
        page.wait_for_timeout(50)

    expect(page.locator(".answer__status .timing")).to_contain_text("First token")
    assert_answer_is_rendering_of(page, demo_answer(question))
    assert len({n for n in lengths if n > 0}) > 3, lengths  # it grew in steps: streamed
    assert page_events.page_errors == [] and page_events.unexpected_console_errors("/favicon.ico") == []


def test_stop_stops_the_answer(page: Page, page_events: PageEvents, example: tuple[str, str]) -> None:
    base_url, question = example
    page.goto(base_url + "/")
    expect(page.locator(".answer__body")).not_to_be_empty()

    page.get_by_role("button", name="Stop").click()

    expect(page.locator(".answer__status")).to_contain_text("Stopped")
    expect(page.locator(".answer__status .timing")).to_be_visible()
    body = page.locator(".answer__body").text_content() or ""
    assert len(body) < len(demo_answer(question))
    assert page_events.page_errors == [] and page_events.unexpected_console_errors("/favicon.ico") == []
