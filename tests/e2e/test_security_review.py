"""One regression test (or a few) per finding of the security review, over real uvicorn: while each
attack runs, another client is still answered within a generous liveness bound (no speed target), and
the rejected request gets a clear 4xx. The server's own limits (oversized or slow heads, clients that
never read, proxy headers) are in test_server_limits.py."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from html.parser import HTMLParser

import httpx
import pytest
from litestar import Litestar, get

from app import create_app
from folyam.components import make_environment
from folyam.markdown import MarkdownPipeline
from folyam.sessions import SESSION_COOKIE
from tests.conftest import HTMX_HEADERS, TEST_SETTINGS, ask, composer_form, openai_settings
from tests.support.fake_upstream import FakeUpstream, Script
from tests.support.servers import serve
from tests.support.sse import answer_html, apply_partials, read_events

PIPELINE = MarkdownPipeline(make_environment())
# Every delta its own event, and room for long answers.
# (A long answer at full speed keeps the test process busy: the upstream, in the same process, gets more
# than the tests' usual second between chunks.)
LONG_ANSWERS = dataclasses.replace(TEST_SETTINGS, flush_interval=0.0, max_output_tokens=100_000, upstream_timeout=10.0)
StartServer = Callable[..., AbstractContextManager[str]]
LIVENESS = 5.0  # seconds: a generous bound for "still answered", not a speed target


@contextmanager
def another_client(url: str) -> Iterator[list[float]]:
    """Fetches the start page over and over while the block runs (it begins once the first answer came);
    yields the response times, and fails if any request errs or takes longer than LIVENESS, during the
    block or right after it."""
    times: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=LIVENESS) as other:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status = other.get(url + "/").status_code
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    return
                times.append(time.monotonic() - started)
                if status != 200:
                    failures.append(f"status {status}")
                time.sleep(0.02)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    deadline = time.monotonic() + LIVENESS
    while not times and not failures and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield times
    finally:
        stop.set()
        thread.join(timeout=LIVENESS + 1)
    after = time.monotonic()
    assert httpx.get(url + "/", timeout=LIVENESS).status_code == 200
    times.append(time.monotonic() - after)
    assert not failures, failures
    assert max(times) < LIVENESS, times


def events_url(response: httpx.Response, base: str) -> str:
    match = re.search(r'hx-sse:connect="([^"]+)"', response.text)
    assert match, response.text
    return base + match.group(1)


def session_cookie(client: httpx.Client) -> str:
    return str(client.cookies[SESSION_COOKIE])


# -- 1. Cookies ----------------------------------------------------------------------------------------


def test_a_cookie_full_of_backslashes_costs_linear_time_and_keeps_the_session(
    client: httpx.Client, demo_server: str
) -> None:
    client.get(demo_server + "/").raise_for_status()
    ours = session_cookie(client)
    hostile = '"' + "\\" * 30_000 + '"'  # quadratic for http.cookies before Python 3.11.10 (CVE-2024-7592)
    headers = {"Cookie": f"junk={hostile}; {SESSION_COOKIE}={ours}"}
    with another_client(demo_server), httpx.Client(timeout=LIVENESS) as attacker:
        for _ in range(20):
            page = attacker.get(demo_server + "/", headers=headers)
            assert page.status_code == 200
            assert "set-cookie" not in page.headers  # our cookie was read: the same session


@pytest.mark.parametrize("neighbour", ["a@b=1", "=", "x", "weird;;;", 'q="unterminated', "ü=ä"])
def test_cookies_other_apps_set_do_not_break_pages(client: httpx.Client, demo_server: str, neighbour: str) -> None:
    client.get(demo_server + "/").raise_for_status()
    ours = session_cookie(client)
    with httpx.Client(timeout=10) as browser:
        cookie = f"{neighbour}; {SESSION_COOKIE}={ours}".encode()  # raw bytes, UTF-8 and all
        page = browser.get(demo_server + "/", headers={"Cookie": cookie})
    assert page.status_code == 200 and "set-cookie" not in page.headers


def test_a_forged_or_non_ascii_session_cookie_starts_a_new_session(demo_server: str) -> None:
    for forged in ["x.y", "é" * 40 + "." + "0" * 43, "a" * 20 + "." + "0" * 43]:
        with httpx.Client(timeout=10) as browser:
            page = browser.get(demo_server + "/", headers={"Cookie": f"{SESSION_COOKIE}={forged}".encode()})
        assert page.status_code == 200 and SESSION_COOKIE in page.headers["set-cookie"]


# -- 2 and 3. Long blocks: bounded work, small tail updates, little kept ---------------------------------


def one_token_per_chunk(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text)


LONG_TABLE = "| Name | Value | Note |\n|---|---:|:-:|\n" + "".join(
    f"| row {i} | {i * 7} | *n{i}* |\n" for i in range(400)
)
LONG_LIST = "".join(f"- item {i}: **{i}** and `code {i}`\n" for i in range(500))
LONG_FENCE = "```python\n" + "".join(f"value_{i} = compute({i}, 'x' * {i})  # <{i}>\n" for i in range(1500)) + "```\n"


@pytest.mark.parametrize("text", [LONG_TABLE, LONG_LIST], ids=["table", "list"])
def test_a_long_block_streams_token_by_token_with_small_tail_updates(
    client: httpx.Client, fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, text: str
) -> None:
    settings = openai_settings(LONG_ANSWERS, fake_upstream[1])
    upstream.script(Script(chunks=one_token_per_chunk(text), delay=0.0005))
    with serve(create_app(settings)) as server, another_client(server):
        _, frames = read_events(client, ask(client, server, "a long block please"))
    tail_frames = [f for f in frames if "-tail" in f.data and "-body" not in f.data]
    assert len(tail_frames) > 1_000  # every token its own event
    # Each tail update is one row or item (and its selector), however long the block has grown.
    assert max(len(f.data) for f in tail_frames[50:]) < 800
    assert answer_html(frames) == str(PIPELINE.render(text))


def test_a_finished_answer_keeps_its_blocks_not_every_tail_frame(
    client: httpx.Client, fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream
) -> None:
    settings = openai_settings(LONG_ANSWERS, fake_upstream[1])
    app = create_app(settings)
    # A line a chunk, a millisecond apart: about a read, and so an event, each (a read's chunks are one).
    upstream.script(Script(chunks=LONG_FENCE.splitlines(keepends=True), delay=0.001))
    with serve(app) as server:
        url = ask(client, server, "a long fence please")
        raw, frames = read_events(client, url)
        retained = asyncio.run(app.state.event_log.retained(url.split("/")[-2]))  # (plain reads: any loop)
    assert len(frames) > 500
    # What stays is the highlighted fence (Pygments spans: several times the text), status and done.
    assert retained.events <= 5
    assert retained.bytes < 12 * len(LONG_FENCE), (retained, len(LONG_FENCE), len(raw))


def test_a_replay_after_the_answer_is_what_was_kept(
    client: httpx.Client, fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream
) -> None:
    settings = openai_settings(LONG_ANSWERS, fake_upstream[1])
    upstream.script(Script(chunks=one_token_per_chunk(LONG_LIST)))
    with serve(create_app(settings)) as server:
        url = ask(client, server, "a long list please")
        _, live = read_events(client, url)
        _, replayed = read_events(client, url)
    assert len(replayed) <= 4 < len(live)
    assert answer_html(replayed) == answer_html(live) == str(PIPELINE.render(LONG_LIST))


# -- 4. The body is not read before the CSRF check -----------------------------------------------------


def test_a_huge_form_without_a_session_is_refused_unread(demo_server: str) -> None:
    body = b"&" * 9_900_000
    with another_client(demo_server), httpx.Client(timeout=LIVENESS) as attacker:
        started = time.monotonic()
        response = attacker.post(
            demo_server + "/chat/conversation-0001/messages",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **HTMX_HEADERS},
        )
        assert response.status_code == 403 and "Page expired" in response.text
        assert time.monotonic() - started < LIVENESS


def test_form_bodies_are_bounded_in_size_fields_and_type(client: httpx.Client, demo_server: str) -> None:
    form = composer_form(client, demo_server + "/")
    action = demo_server + form.pop("action")
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    with another_client(demo_server):
        # Announced too large: refused before reading.
        huge = client.post(action, content=b"query=" + b"x" * 2_000_000, headers=form_type)
        assert huge.status_code == 413 and "Question too long" in huge.text

        # Sent without a length (chunked), too large: refused once past the limit.
        def chunks() -> Iterator[bytes]:
            yield b"csrf_token=" + form["csrf_token"].encode() + b"&query="
            for _ in range(200):
                yield b"y" * 10_000

        chunked = client.post(action, content=chunks(), headers=form_type)
        assert chunked.status_code == 413
        many = client.post(action, content=b"&".join([b"a="] * 5_000) + b"&query=q", headers=form_type)
        assert many.status_code == 400 and "at most" in many.text
        json = client.post(action, json={"query": "q", **form})
        assert json.status_code == 415
    assert client.post(action, data={**form, "query": "fine"}).status_code == 200


def test_the_csrf_header_is_checked_without_reading_the_body(client: httpx.Client, demo_server: str) -> None:
    form = composer_form(client, demo_server + "/")
    wrong = client.post(
        demo_server + form["action"],
        content=b"x" * 50_000_000,
        headers={"X-CSRF-Token": "wrong", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert wrong.status_code == 403


# -- 6. Error notices carry no secrets ------------------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        Script(fault="status", status=400, echo_headers=True),
        Script(fault="error_event", fail_after=1, echo_headers=True),
        Script(fault="status", status=500, echo_headers=True),
    ],
    ids=["rejected", "error-event", "server-error"],
)
def test_upstream_error_text_that_echoes_the_api_key_is_redacted(
    client: httpx.Client,
    openai_server: str,
    upstream: FakeUpstream,
    script: Script,
    capfd: pytest.CaptureFixture[str],
) -> None:
    upstream.script(script)
    raw, frames = read_events(client, ask(client, openai_server, "q"))
    assert "sk-test-secret" not in raw and "Bearer sk" not in raw
    assert 'class="notice notice--error"' in frames[-2].data
    status = frames[-2].data
    assert len(re.sub(r"<[^>]+>", "", status.split("<dl")[0])) < 400  # trimmed
    time.sleep(0.3)  # the log is written by a thread
    assert "sk-test-secret" not in capfd.readouterr().err


def test_an_internal_error_is_a_plain_500_page_and_a_logged_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    @get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom with sk-test-secret inside")

    settings = dataclasses.replace(TEST_SETTINGS, openai_api_key="sk-test-secret")
    app: Litestar = create_app(settings)
    app.register(boom)
    with serve(app) as server, httpx.Client(timeout=10) as browser:
        response = browser.get(server + "/boom")
        assert response.status_code == 500
        assert "Something went wrong" in response.text and "kaboom" not in response.text
        logged = ""
        deadline = time.monotonic() + 5
        while "kaboom" not in logged and time.monotonic() < deadline:
            time.sleep(0.05)
            logged += capfd.readouterr().err
    assert "Traceback" in logged and "RuntimeError: kaboom" in logged
    assert "sk-test-secret" not in logged and "[redacted]" in logged
    assert logged.count("Traceback") == 1  # the client errors along the way (none here) are not faults


def test_client_errors_are_not_logged_as_faults(
    client: httpx.Client, demo_server: str, capfd: pytest.CaptureFixture[str]
) -> None:
    client.get(demo_server + "/chat/no-such-conversation")  # 404
    client.post(demo_server + "/chat/conversation-0001/messages", data={"query": "q"})  # 403: no session yet
    client.get(demo_server + "/generations/x/events", params={"after": "abc"})  # 400
    time.sleep(0.3)  # the log is written by a thread
    logged = capfd.readouterr().err
    assert "Traceback" not in logged and "Uncaught exception" not in logged


# -- 7. Bounds ------------------------------------------------------------------------------------------


def test_an_upstream_that_ignores_max_tokens_is_cut_off(
    client: httpx.Client, start_server: StartServer, fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=[f"w{n} " for n in range(2_000)], delay=0.001))
    _, url = fake_upstream
    with start_server(provider="openai", model="m", openai_base_url=url, max_output_tokens=50) as server:
        _, frames = read_events(client, ask(client, server, "q"))
    assert "The answer reached the output limit" in frames[-2].data
    assert answer_html(frames) == str(PIPELINE.render("".join(f"w{n} " for n in range(50))))
    [request] = upstream.requests
    assert request.body["max_tokens"] == 50
    deadline = time.monotonic() + 2
    while request.disconnected_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert request.disconnected_at is not None  # we stopped reading: the connection was closed


def test_one_giant_chunk_counts_by_its_characters(
    client: httpx.Client, start_server: StartServer, fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=["word " * 200_000]))
    _, url = fake_upstream
    with start_server(provider="openai", model="m", openai_base_url=url, max_output_tokens=100) as server:
        _, frames = read_events(client, ask(client, server, "q"))
    assert "The answer reached the output limit" in frames[-2].data
    assert answer_html(frames) == ""  # nothing of it was accepted


def test_running_answers_are_capped_per_client_address_and_in_all(start_server: StartServer) -> None:
    def fresh_session_asks(server: str) -> httpx.Response:
        with httpx.Client(timeout=10, headers=HTMX_HEADERS) as browser:
            form = composer_form(browser, server + "/")
            return browser.post(server + form.pop("action"), data={**form, "query": "q"})

    with start_server(max_running_per_client=2, demo_tokens_per_second=2.0) as server:
        assert [fresh_session_asks(server).status_code for _ in range(3)] == [200, 200, 429]
        assert "from your address" in fresh_session_asks(server).text
    with start_server(max_running=2, demo_tokens_per_second=2.0) as server:
        statuses = [fresh_session_asks(server) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 503]
        assert "Server busy" in statuses[2].text


def test_open_event_streams_are_capped_per_session(client: httpx.Client, start_one_process: StartServer) -> None:
    # (Per process: with several, each holds its own count.)
    with start_one_process(max_streams_per_session=2, demo_tokens_per_second=2.0) as server:
        url = ask(client, server, "q")
        with client.stream("GET", url) as first, client.stream("GET", url) as second:
            assert first.status_code == second.status_code == 200
            third = client.get(url)
            assert third.status_code == 429 and "Too many open streams" in third.text
        # Closing them gives the slots back.
        deadline = time.monotonic() + 5
        while True:
            with client.stream("GET", url) as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "the slots were never given back"
            time.sleep(0.05)


# -- 8. The low ones ------------------------------------------------------------------------------------


def test_a_question_cannot_move_the_answer_on_the_no_javascript_page(demo_server: str) -> None:
    question = "before \x00body\x00 <b>after</b> \x00status\x00"
    with httpx.Client(timeout=10, follow_redirects=True) as browser:
        form = composer_form(browser, demo_server + "/")
        page = browser.post(demo_server + form.pop("action"), data={**form, "query": question}).text
    bubble = re.search(r'<p class="message__text">(.*?)</p>', page, re.S)
    assert bubble is not None and "&lt;b&gt;after&lt;/b&gt;" in bubble.group(1) and "<h2>" not in bubble.group(1)
    answer = re.search(r'<div class="answer__content markdown" hx-ignore>(.*?)<div class="answer__status"', page, re.S)
    assert answer is not None and "<h2>About" in answer.group(1)


def test_non_ascii_digits_in_a_cursor_are_no_reason_to_fail(client: httpx.Client, demo_server: str) -> None:
    url = ask(client, demo_server, "cursors")
    for odd in ["²", "١٢", "1²", "٣"]:
        with client.stream("GET", url, headers={"Last-Event-ID": odd.encode()}) as events:
            assert events.status_code == 200
            assert "".join(events.iter_text()).count("event: done") == 1
    assert client.get(url, params={"after": "²"}).status_code == 400


def test_per_session_responses_are_not_stored_by_caches(client: httpx.Client, demo_server: str) -> None:
    page = client.get(demo_server + "/")
    form = composer_form(client, demo_server + "/")
    asked = client.post(demo_server + form.pop("action"), data={**form, "query": "q"})
    missing = client.get(demo_server + "/chat/no-such-conversation")
    with client.stream("GET", events_url(asked, demo_server)) as events:
        event_headers = events.headers
    for headers in (page.headers, asked.headers, missing.headers, event_headers):
        assert headers["cache-control"] == "no-store"
    assert "no-store" not in client.get(demo_server + "/static/folyam.css").headers.get("cache-control", "")


def test_link_text_loses_bidi_and_invisible_controls_in_the_stream(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=["Get [\u202egnp.exe](https://x.org/\u202egnp.exe) ", "[a\u200bb](https://x.org)"]))
    _, frames = read_events(client, ask(client, openai_server, "q"))
    body = apply_partials(frames)
    html = next(v for k, v in body.items() if k.endswith("-body"))
    assert "\u202e" not in html and "\u200b" not in html
    assert ">gnp.exe</a>" in html and 'href="https://x.org/%E2%80%AEgnp.exe"' in html
    assert ">ab</a>" in html


# -- Math and task lists: what the sanitiser lets through, and what converting costs --------------------

MATH_AND_TASKS = (
    "- [x] done <input type=text autofocus onfocus=alert(1)>\n- [ ] <input type=checkbox>\n\n"
    "Inline $\\href{javascript:alert(1)}{click}$ and $\\text{</mtext></math><img src=x onerror=alert(1)>}$.\n\n"
    "$$\n\\style{position:fixed;inset:0}{x} \\class{codeblock__copy}{y} \\color{white}{z} \\hspace{9999em}\n$$\n\n"
    '\\[\n\\text{<hx-partial hx-target="body" hx-swap="innerHTML">pwn</hx-partial>}\n\\]\n\nThe end.'
)
ALLOWED_ATTRIBUTES = {
    "class", "role", "tabindex", "aria-label", "type", "disabled", "checked", "display", "mathvariant",
    "stretchy", "fence", "form", "separator", "lspace", "rspace", "width", "height", "depth", "linebreak",
}  # fmt: skip


class _StartTags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def start_tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _StartTags()
    parser.feed(html)
    return parser.tags


def _check_model_output(html: str) -> None:
    for tag, attributes in start_tags(html):
        assert tag not in {"a", "img", "script", "style", "svg", "iframe", "form", "button", "hx-partial"}, html
        assert set(attributes) <= ALLOWED_ATTRIBUTES, html
        if tag == "input":
            assert attributes.items() >= {"type": "checkbox", "disabled": "disabled"}.items(), html


def test_hostile_math_and_task_lists_stream_harmless(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=one_token_per_chunk(MATH_AND_TASKS)))
    _, frames = read_events(client, ask(client, openai_server, "q"))
    for frame in frames:  # the live tail's states too, not only the finished body
        for target, content in re.findall(
            r'<hx-partial hx-target="([^"]+)" hx-swap="[^"]+">(.*?)</hx-partial>', frame.data, re.S
        ):
            # The model's output goes into the body and the tail; the status, the composer's button and
            # the announcer are our own templates (the answer's source rides along only as escaped text).
            if not re.match(r"#answer-[A-Za-z0-9_-]+-(body|tail)", target):
                for source in re.findall(r'<template class="answer__source">(.*?)</template>', content, re.S):
                    assert "<" not in source
                continue
            _check_model_output(content)
    html = answer_html(frames)

    assert html == str(PIPELINE.render(MATH_AND_TASKS))
    assert html.count("<math") == 4 and html.count("<input") == 2
    assert "&lt;input type=text autofocus onfocus=alert(1)&gt;" in html  # raw HTML is text


def test_formulas_that_are_hard_to_convert_cost_bounded_time(
    client: httpx.Client, fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream
) -> None:
    """Deep nesting, long repetitions, macros and huge formulas, each different (no cache helps): the
    answer streams and another client is still answered within the liveness bound."""

    def formulas(n: int) -> list[str]:
        return [
            f"$${'{' * 1500}x{n}{'}' * 1500}$$",  # deeper than latex2mathml's recursion allows
            "$$" + f"x^{n % 10}" * 1300 + "$$",  # a long formula, close to the bound
            f"$$\\def\\a{{\\a\\a}}\\a{n}$$",  # a macro that would expand without end
            "$$" + f"\\frac{{{n}}}{{2}}" * 2000 + "$$",  # longer than the bound: shown as source
        ]

    text = "\n\n".join(formula for n in range(12) for formula in formulas(n)) + "\n\nThe end."
    settings = openai_settings(LONG_ANSWERS, fake_upstream[1])
    upstream.script(Script(chunks=one_token_per_chunk(text)))
    with serve(create_app(settings)) as server, another_client(server):
        _, frames = read_events(client, ask(client, server, "hard formulas please"))
    html = answer_html(frames)
    assert html == str(PIPELINE.render(text))
    assert html.count('class="math-source"') == 36 and html.count("<math") == 12
