"""Fixtures for the browser tests: Debian's Chromium driven by Playwright's sync API, a fresh
context per test that records console errors, page errors and requests, real uvicorn servers whose
demo model is paced so streaming can be watched, a server that records every hit it gets, and the
page helpers the tests share."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, expect, sync_playwright

from folyam.components import make_environment
from folyam.markdown import MarkdownPipeline
from tests.conftest import TEST_SETTINGS, Deploy, openai_settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.servers import serve

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).resolve().parents[2] / ".cache" / "axe-core-4.14.1" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Playwright's default wait for actions and `expect`; a paced demo answer takes about 4 s.
DEFAULT_TIMEOUT_MS = 15_000
expect.set_options(timeout=DEFAULT_TIMEOUT_MS)

# The demo model paced like a real one: the answer arrives over a few seconds, in many events.
# (Chunks come up to a second apart here: the upstream may stay silent longer than in the other tests.)
PACED_SETTINGS = dataclasses.replace(
    TEST_SETTINGS, demo_first_token_delay=0.2, demo_tokens_per_second=60, flush_interval=0.03, upstream_timeout=10.0
)

# Time allowed for a whole answer to stream; the paced demo answer takes about 4 s.
ANSWER_TIMEOUT_MS = 30_000

# The one-shot render a streamed answer body must end up equal to.
MARKDOWN = MarkdownPipeline(make_environment())

# Collects every CSP violation the document reports, from before the page's first script runs.
CSP_RECORDER = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__csp.push({directive: event.violatedDirective, blocked: event.blockedURI, sample: event.sample});
});
"""

# The answer body's HTML and the expected HTML, both serialised by the browser (an inert <template>
# parses the expected one), so the comparison does not depend on how the server spelled the markup.
SERIALISE_BODY_AND_EXPECTED = """(expected) => {
  const template = document.createElement("template");
  template.innerHTML = expected;
  return {
    body: document.querySelector(".answer__body").innerHTML,
    expected: template.innerHTML,
    tail: document.querySelector(".answer__tail").innerHTML,
  };
}"""


@dataclass(frozen=True)
class ConsoleError:
    text: str
    url: str


@dataclass
class PageEvents:
    """What a page reported while a test drove it."""

    console_errors: list[ConsoleError] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    request_urls: list[str] = field(default_factory=list)

    def unexpected_console_errors(self, *allowed_paths: str) -> list[ConsoleError]:
        """Console errors other than a failed load of one of `allowed_paths`."""
        allowed = set(allowed_paths)
        return [
            error
            for error in self.console_errors
            if not (error.text.startswith("Failed to load resource") and urlsplit(error.url).path in allowed)
        ]

    @property
    def request_paths(self) -> list[str]:
        return [urlsplit(url).path for url in self.request_urls]


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"The browser tests need Debian's Chromium at {CHROMIUM}, and it is missing. "
            "Install it with `apt-get install chromium` (Playwright's own browser download is not used).",
            pytrace=False,
        )
    browser = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page_events() -> PageEvents:
    return PageEvents()


@pytest.fixture
def page(browser: Browser, page_events: PageEvents) -> Iterator[Page]:
    """A fresh context and page per test; what it reports is recorded in `page_events`."""
    context = browser.new_context()
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            page_events.console_errors.append(ConsoleError(message.text, message.location.get("url", "")))

    def on_request(request: Request) -> None:
        page_events.request_urls.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda error: page_events.page_errors.append(f"{error.name}: {error.message}"))
    page.on("request", on_request)
    yield page
    context.close()


@pytest.fixture(scope="session")
def paced_server(deploy: Deploy) -> Iterator[str]:
    """The app with the offline demo model, paced so an answer streams for about 4 s."""
    with deploy(PACED_SETTINGS) as url:
        yield url


@pytest.fixture(scope="session")
def openai_paced_server(deploy: Deploy, fake_upstream: tuple[FakeUpstream, str]) -> Iterator[str]:
    """The app with the OpenAI provider, talking to the fake upstream."""
    with deploy(openai_settings(PACED_SETTINGS, fake_upstream[1], api_key="sk-test")) as url:
        yield url


class HitRecorder:
    """A tiny ASGI app that answers every request with 204 and records its path and query: a
    third-party server the answer may point at, which the browser must never contact."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: list[str] = []

    @property
    def hits(self) -> list[str]:
        with self._lock:
            return list(self._hits)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = scope["query_string"].decode()
        with self._lock:
            self._hits.append(scope["path"] + (f"?{query}" if query else ""))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def hit_recorder() -> Iterator[tuple[HitRecorder, str]]:
    """A second loopback server that records every hit; yields it and its base URL."""
    recorder = HitRecorder()
    with serve(recorder, lifespan="off") as url:
        yield recorder, url


def run_axe(page: Page, state: str, context: str = "document") -> None:
    """axe-core (from the npm registry, checked and cached by ./scripts/test: scripts/fetch_axe.py) on the
    page as it is, or on the elements `context` selects: no violations."""
    if not AXE.is_file():
        pytest.fail(
            f"axe-core is missing at {AXE}: run `python scripts/fetch_axe.py` (./scripts/test does)", pytrace=False
        )
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())  # evaluated by the driver: the page's CSP does not apply to it
    script = "async (context) => (await axe.run(context === 'document' ? document : context)).violations"
    found = [
        f"{v['id']} ({v['impact']}): {v['help']} — " + "; ".join(node["html"][:160] for node in v["nodes"][:3])
        for v in page.evaluate(script, context)
    ]
    assert found == [], f"axe violations in state {state!r}:\n" + "\n".join(found)


def open_chat(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/")
    # htmx marks the forms it handles; before that, a click would submit the form natively.
    expect(page.locator("#composer")).to_have_attribute("data-htmx-powered", "true")


def ask(page: Page, question: str) -> None:
    page.fill("textarea[name=query]", question)
    page.get_by_role("button", name="Ask").click()


def assert_answer_is_rendering_of(page: Page, text: str) -> None:
    """The streamed answer body equals the one-shot render of `text`, and the live tail is empty."""
    seen = page.evaluate(SERIALISE_BODY_AND_EXPECTED, str(MARKDOWN.render(text)))
    assert seen["body"] == seen["expected"]
    assert seen["tail"] == ""
