"""Rich model output on a phone-sized page: tables, task lists, math and long code streamed through the
real page. Table cells keep their words whole and the table scrolls sideways in its own box (not the
page); what scrolls takes the focus with Tab; math is MathML with nothing in it that links or runs;
checkboxes are disabled and labelled; a table being written never shows raw pipes; axe finds nothing
wrong in the answer."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ANSWER_TIMEOUT_MS, PageEvents, ask, assert_answer_is_rendering_of, open_chat, run_axe
from tests.support.fake_upstream import FakeUpstream, Script

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}

ANSWER = (
    "Here is the comparison:\n\n"
    "| Language | Internationalization | Characteristically | Responsibilities |\n"
    "|---|---|:-:|---:|\n"
    "| Hungarian | megszentségteleníthetetlenségeskedéseitekért | agglutinative | 1 |\n"
    "| German | Donaudampfschifffahrtsgesellschaft | compounding | 22 |\n"
    "| English | antidisestablishmentarianism | analytic | 333 |\n\n"
    "Your tasks:\n\n- [x] read the table\n- [ ] solve $x^2 + y^2 = r^2$ for \\(y\\)\n\n"
    "The formula:\n\n$$\n\\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}\n$$\n\n"
    "Hostile: $\\href{javascript:alert(1)}{click}$ and $\\text{<script>window.__pwned=1</script>}$.\n\n"
    "```python\n"
    "result = compute_something_with_a_very_long_name(first_argument_value, second_argument_value, third)\n"
    "```\n\n"
    "The end."
)

# One evaluation per observation, so everything in it belongs to the same moment.
OBSERVE_TAIL = """() => {
  const tail = document.querySelector(".answer__tail");
  return {
    done: document.querySelector(".answer .timing") !== null,
    text: tail ? tail.textContent : "",
    table: tail !== null && tail.querySelector("table") !== null,
  };
}"""

# Each word of each table cell, and how many line boxes it takes (more than one: broken inside).
BROKEN_WORDS = """() => {
  const broken = [];
  for (const cell of document.querySelectorAll(".answer__body td, .answer__body th")) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.data.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const lines = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
        if (lines.size > 1) broken.push(match[0]);
      }
    }
  }
  return broken;
}"""

SCROLLING = """() => {
  const box = document.querySelector(".answer__body .table-scroll");
  const pre = document.querySelector(".answer__body .codeblock pre");
  return {
    pageWidth: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
    table: [box.scrollWidth, box.clientWidth],
    code: [pre.scrollWidth, pre.clientWidth],
  };
}"""

# Attributes of everything inside the MathML, and anything there that could link or run.
MATHML = """() => {
  const math = [...document.querySelectorAll(".answer__body math")];
  const inside = math.flatMap((m) => [m, ...m.querySelectorAll("*")]);
  return {
    count: math.length,
    blocks: document.querySelectorAll(".answer__body .math-block > math[display=block]").length,
    names: [...new Set(inside.map((e) => e.localName))],
    attributes: [...new Set(inside.flatMap((e) => [...e.attributes].map((a) => a.name)))],
    links: math.reduce((n, m) => n + m.querySelectorAll("a, script, [href], [src], [style]").length, 0),
  };
}"""

ACTIVE = """() => {
  const e = document.activeElement;
  return e ? [e.localName, e.className, e.getAttribute("aria-label")] : null;
}"""


def test_tables_task_lists_math_and_code_on_a_phone(
    page: Page, page_events: PageEvents, upstream: FakeUpstream, openai_paced_server: str
) -> None:
    page.set_viewport_size(PHONE)
    upstream.script(Script(chunks=re.findall(r"\s*\S+|\s+", ANSWER), delay=0.01))
    open_chat(page, openai_paced_server)

    ask(page, "Show me everything")
    observations: list[dict[str, Any]] = []
    deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000
    while not (seen := page.evaluate(OBSERVE_TAIL))["done"]:
        observations.append(seen)
        assert time.monotonic() < deadline, f"the answer did not finish; last seen: {seen}"
        page.wait_for_timeout(10)

    # The table grew in the tail, and never showed as a paragraph of raw pipes first.
    assert any(o["table"] for o in observations), observations
    assert [o["text"] for o in observations if "|" in o["text"]] == []
    assert_answer_is_rendering_of(page, ANSWER)
    body = page.locator(".answer__body")

    # On a phone, the table keeps its words whole and scrolls in its box; the page does not scroll sideways.
    expect(body.locator(".table-scroll > table")).to_have_count(1)
    assert page.evaluate(BROKEN_WORDS) == []
    scrolling = page.evaluate(SCROLLING)
    assert scrolling["pageWidth"] <= scrolling["viewport"], scrolling
    assert scrolling["table"][0] > scrolling["table"][1], scrolling
    assert scrolling["code"][0] > scrolling["code"][1], scrolling

    # Tab reaches the table's box and the code, each with a name.
    # (Tabbing starts at the answer: the page's own controls come before it.)
    page.locator(".answer__body").evaluate("(body) => { body.tabIndex = -1; body.focus(); }")
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate(ACTIVE))
    assert ["div", "table-scroll", "Table"] in reached, reached
    assert ["pre", "highlight", "python code"] in reached, reached
    # A focused box scrolls with the arrow keys.
    box = body.locator(".table-scroll")
    box.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('.answer__body .table-scroll').scrollLeft > 0")

    # Task list items are disabled checkboxes, and the only inputs the answer has.
    checkboxes = body.locator("li.task-list-item > label > input[type=checkbox]")
    expect(checkboxes).to_have_count(2)
    for n in range(2):
        expect(checkboxes.nth(n)).to_be_disabled()
    expect(checkboxes.first).to_be_checked()
    expect(checkboxes.last).not_to_be_checked()
    expect(body.locator("input")).to_have_count(2)

    # Math is MathML drawn by the browser, with nothing in it that links, loads or runs.
    math = page.evaluate(MATHML)
    assert math["count"] == 5 and math["blocks"] == 1, math
    assert math["links"] == 0, math
    assert set(math["attributes"]) <= {"display", "stretchy", "fence", "form", "mathvariant"}, math
    assert {"mfrac", "msqrt", "msup"} <= set(math["names"]), math
    expect(body.locator("mtext")).to_have_text(["<script>window.__pwned=1</script>"])
    assert page.evaluate("() => typeof window.__pwned") == "undefined"

    # axe finds nothing in the answer: no scrollable region a keyboard cannot reach, no checkbox without a
    # label (the item's text), no contrast too low.
    run_axe(page, "a table, task list, math and code on a phone", ".answer")

    assert page_events.page_errors == []
    assert page_events.unexpected_console_errors() == []
