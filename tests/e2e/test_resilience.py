"""Stop, resume, reload, idempotent start, ownership, limits, retries and retention, over real uvicorn."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import pytest

from folyam.components import make_environment
from folyam.markdown import MarkdownPipeline
from folyam.providers.demo import demo_answer
from tests.conftest import HTMX_HEADERS, ask, composer_form
from tests.support.fake_upstream import FakeUpstream, Script
from tests.support.sse import answer_html, apply_partials, read_events, read_some

PIPELINE = MarkdownPipeline(make_environment())
StartServer = Callable[..., AbstractContextManager[str]]


def post_question(client: httpx.Client, base_url: str, query: str, **overrides: str) -> httpx.Response:
    form = composer_form(client, base_url + "/")
    return client.post(base_url + form.pop("action"), data={**form, "query": query, **overrides})


def events_path(response: httpx.Response) -> str:
    match = re.search(r'hx-sse:connect="([^"]+)"', response.text)
    assert match, response.text
    return match.group(1)


def csrf_token(client: httpx.Client, base_url: str) -> str:
    return composer_form(client, base_url + "/")["csrf_token"]


# -- Stop ------------------------------------------------------------------------------------------


def test_stop_closes_the_upstream_within_a_second_and_keeps_the_partial_answer(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=[f"word{n} " for n in range(400)], delay=0.02))
    url = ask(client, openai_server, "long answer")
    seen = read_some(client, url, 5)
    stop_url = url.replace("/events", "/stop")

    stopped_at = time.monotonic()
    response = client.post(stop_url, headers={"X-CSRF-Token": csrf_token(client, openai_server)})
    assert response.status_code == 204

    _, rest = read_events(client, url, last_event_id=seen[-1].id)
    frames = seen + rest
    assert frames[-1].event == "done"
    assert "Stopped" in frames[-2].data and '<dl class="timing">' in frames[-2].data
    [request] = upstream.requests
    deadline = time.monotonic() + 2
    while request.disconnected_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert request.disconnected_at is not None, "the upstream connection was not closed"
    assert request.disconnected_at - stopped_at < 1.0
    text = answer_html(frames)
    assert text.startswith("<p>word0 word1") and "word399" not in text
    # A second stop of a finished answer changes nothing and is not an error.
    assert client.post(stop_url, headers={"X-CSRF-Token": csrf_token(client, openai_server)}).status_code == 204


def test_closing_the_stream_does_not_stop_the_answer(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    chunks = [f"w{n} " for n in range(30)]
    upstream.script(Script(chunks=chunks, delay=0.01))
    url = ask(client, openai_server, "q")
    read_some(client, url, 2)  # the tab goes away
    time.sleep(0.6)  # the answer completes server-side meanwhile
    _, frames = read_events(client, url)
    assert answer_html(frames) == str(PIPELINE.render("".join(chunks)))
    assert "Stopped" not in frames[-2].data


# -- Resume and reload -----------------------------------------------------------------------------


def test_reloading_the_conversation_mid_answer_shows_it_so_far_and_continues(
    client: httpx.Client, start_server: StartServer
) -> None:
    question = "reload me"
    with start_server(demo_tokens_per_second=100.0, demo_first_token_delay=0.0, flush_interval=0.03) as server:
        response = post_question(client, server, question)
        conversation = response.headers["HX-Push-Url"]
        read_some(client, server + re.search(r'hx-sse:connect="([^"]+)"', response.text).group(1), 20)  # type: ignore[union-attr]

        page = client.get(server + conversation)  # the reload, mid-answer
        assert page.status_code == 200
        events_url = re.search(r'hx-sse:connect="([^"]+)"', page.text)
        assert events_url and "?after=" in events_url.group(1)
        body_and_tail = (
            r'class="answer__body" id="([^"]+)"[^>]*>(.*?)</div>\s*'
            r'<div class="answer__tail" id="([^"]+)"[^>]*>(.*?)</div>'
        )
        found = re.search(body_and_tail, page.text, re.S)
        assert found and found.group(2)  # some of the answer is already on the page
        assert "Stop</button>" in page.text

        _, rest = read_events(client, server + events_url.group(1))
    assert not any('-body" hx-swap="innerHTML"' in f.data for f in rest)
    # The rest of the events, applied to the reloaded page's body and live tail:
    targets = apply_partials(rest, {found.group(1): found.group(2), found.group(3): found.group(4)})
    assert targets[found.group(1)] == str(PIPELINE.render(demo_answer(question)))  # nothing lost, nothing twice
    assert targets[found.group(3)] == ""


def test_the_conversation_url_renders_every_exchange(client: httpx.Client, demo_server: str) -> None:
    first = post_question(client, demo_server, "first question")
    conversation = first.headers["HX-Push-Url"]
    read_events(client, demo_server + re.search(r'hx-sse:connect="([^"]+)"', first.text).group(1))  # type: ignore[union-attr]
    form = composer_form(client, demo_server + conversation)
    assert form["action"] == conversation + "/messages"
    second = client.post(demo_server + form.pop("action"), data={**form, "query": "second question"})
    read_events(client, demo_server + re.search(r'hx-sse:connect="([^"]+)"', second.text).group(1))  # type: ignore[union-attr]

    page = client.get(demo_server + conversation).text
    assert page.count('class="message message--user"') == 2
    assert "first question" in page and "second question" in page
    assert "hx-sse:connect" not in page  # both finished: nothing to connect to
    assert page.count('<dl class="timing">') == 2


def test_a_follow_up_question_sends_the_conversation_so_far(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=["Paris", "."]), Script(chunks=["About 2 million", "."]))
    first = post_question(client, openai_server, "Capital of France?")
    conversation = first.headers["HX-Push-Url"]
    read_events(client, openai_server + re.search(r'hx-sse:connect="([^"]+)"', first.text).group(1))  # type: ignore[union-attr]
    url = ask(client, openai_server, "How many people live there?", conversation_url=conversation)
    read_events(client, url)
    assert upstream.requests[1].body["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "How many people live there?"},
    ]


# -- Idempotent start ------------------------------------------------------------------------------


def test_a_conversation_answers_one_question_at_a_time(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=[f"w{n} " for n in range(40)], delay=0.05), Script(chunks=["Second."]))
    first = post_question(client, openai_server, "first")
    conversation = first.headers["HX-Push-Url"]
    form = composer_form(client, openai_server + conversation)
    action = openai_server + form.pop("action")
    refused = client.post(action, data={**form, "query": "second"})
    assert refused.status_code == 409 and "hx-sse:connect" not in refused.text
    assert refused.text.startswith('<hx-partial hx-target="#composer-error"') and "Still answering" in refused.text
    read_events(client, openai_server + events_path(first))
    # Asked the moment the first is done: it has ended, and it is the second question's context.
    read_events(client, openai_server + events_path(client.post(action, data={**form, "query": "second"})))
    assert [len(r.messages) for r in upstream.requests] == [1, 3]


def test_a_resent_form_returns_the_same_generation_and_calls_the_model_once(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(delay=0.01))
    form = composer_form(client, openai_server + "/")
    action = form.pop("action")
    first = client.post(openai_server + action, data={**form, "query": "once"})
    again = client.post(openai_server + action, data={**form, "query": "once"})
    # The same answer (still running, or already finished if another process took the second post).
    answer = re.compile(r'<article class="answer" id="answer-([^"]+)"')
    generation = answer.search(first.text).group(1)  # type: ignore[union-attr]
    assert answer.search(again.text).group(1) == generation  # type: ignore[union-attr]
    read_events(client, f"{openai_server}/generations/{generation}/events")
    assert len(upstream.requests) == 1
    # Every composer comes with a fresh request id for the next question.
    assert re.search(r'name="request_id" value="([^"]+)"', first.text).group(1) != form["request_id"]  # type: ignore[union-attr]


# -- Ownership -------------------------------------------------------------------------------------


def test_another_session_gets_404_for_every_url_of_the_first(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=["secret ", "answer"]))
    response = post_question(client, openai_server, "private question")
    conversation = response.headers["HX-Push-Url"]
    events_url = re.search(r'hx-sse:connect="([^"]+)"', response.text).group(1)  # type: ignore[union-attr]
    read_events(client, openai_server + events_url)

    with httpx.Client(timeout=10, headers=HTMX_HEADERS) as stranger:
        token = csrf_token(stranger, openai_server)
        replies = [
            stranger.get(openai_server + events_url),
            stranger.get(openai_server + events_url + "?after=0", headers={"Last-Event-ID": "0"}),
            stranger.get(openai_server + conversation),
            stranger.post(openai_server + events_url.replace("/events", "/stop"), headers={"X-CSRF-Token": token}),
            stranger.post(
                openai_server + conversation + "/messages",
                data={"query": "mine now?", "csrf_token": token, "request_id": "stranger-001"},
            ),
        ]
    for reply in replies:
        assert reply.status_code == 404, reply.request.url
        assert "secret" not in reply.text and "private question" not in reply.text
    assert len(upstream.requests) == 1


def test_a_forged_session_cookie_is_a_new_session(client: httpx.Client, demo_server: str) -> None:
    response = post_question(client, demo_server, "mine")
    events_url = re.search(r'hx-sse:connect="([^"]+)"', response.text).group(1)  # type: ignore[union-attr]
    cookie = client.cookies["folyam_session"]
    session_id, _, mac = cookie.rpartition(".")
    with httpx.Client(timeout=10, cookies={"folyam_session": f"{session_id}.{'0' * len(mac)}"}) as forger:
        assert forger.get(demo_server + events_url).status_code == 404


# -- Limits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong", "from-another-session"])
def test_unsafe_requests_need_the_sessions_csrf_token(
    client: httpx.Client, demo_server: str, token: str | None
) -> None:
    form = composer_form(client, demo_server + "/")
    action = form.pop("action")
    if token is None:
        form.pop("csrf_token")
    elif token == "wrong":
        form["csrf_token"] = "0" * 43
    else:
        with httpx.Client(timeout=10) as other:
            form["csrf_token"] = csrf_token(other, demo_server)
    response = client.post(demo_server + action, data={**form, "query": "q"})
    assert response.status_code == 403
    assert 'hx-target="#composer-error"' in response.text and "Reload the page" in response.text
    assert "hx-sse:connect" not in response.text


def test_the_csrf_header_is_accepted_as_well(client: httpx.Client, demo_server: str) -> None:
    form = composer_form(client, demo_server + "/")
    token = form.pop("csrf_token")
    response = client.post(
        demo_server + form.pop("action"), data={**form, "query": "q"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200


def test_running_answers_per_session_are_limited(client: httpx.Client, start_server: StartServer) -> None:
    with start_server(max_running_per_session=1, demo_tokens_per_second=5.0) as server:
        assert post_question(client, server, "first").status_code == 200
        second = post_question(client, server, "second")
        assert second.status_code == 429
        assert "Too many answers at once" in second.text
        with httpx.Client(timeout=10, headers=HTMX_HEADERS) as other_session:
            assert post_question(other_session, server, "theirs").status_code == 200


def test_questions_per_client_are_rate_limited(client: httpx.Client, start_server: StartServer) -> None:
    with start_server(rate_limit_per_minute=2) as server:
        assert post_question(client, server, "one").status_code == 200
        assert post_question(client, server, "two").status_code == 200
        third = post_question(client, server, "three")
        assert third.status_code == 429
        assert 1 <= int(third.headers["Retry-After"]) <= 60
        assert "Slow down" in third.text


def test_output_tokens_and_wall_time_are_limited(client: httpx.Client, start_server: StartServer) -> None:
    with start_server(max_output_tokens=5) as server:
        _, frames = read_events(client, ask(client, server, "short please"))
        assert "<dt>Tokens</dt><dd>5</dd>" in frames[-2].data
    with start_server(generation_timeout=0.3, demo_tokens_per_second=20.0) as server:
        _, frames = read_events(client, ask(client, server, "slow please"))
        assert "The answer took too long" in frames[-2].data
        assert answer_html(frames).startswith("<h2>About")


def test_idle_streams_get_keepalive_comments_and_are_not_buffered(
    client: httpx.Client, start_server: StartServer, fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream
) -> None:
    # (A quiet second: with Redis a keep-alive comes every other 100 ms read, and half a second was too
    # close to two on a busy machine.)
    upstream.script(Script(chunks=["slow", " start"], delay=1.0))
    with start_server(
        keepalive_interval=0.1, provider="openai", model="m", openai_base_url=fake_upstream[1], openai_api_key="k"
    ) as server:
        url = ask(client, server, "q")
        with client.stream("GET", url) as response:
            assert response.headers["x-accel-buffering"] == "no"
            assert response.headers["cache-control"] == "no-store"
            raw = "".join(response.iter_text())
    assert raw.count(": keep-alive") >= 2
    assert raw.rstrip().endswith("event: done\r\ndata:")


# -- Upstream faults before the first token --------------------------------------------------------


@pytest.mark.parametrize(
    ("scripts", "requests", "outcome"),
    [
        ([Script(fault="status", status=503), Script()], 2, "answer"),
        ([Script(fault="status", status=429, retry_after="0"), Script()], 2, "answer"),
        ([Script(fault="drop", fail_after=0), Script()], 2, "answer"),
        ([Script(fault="status", status=502)] * 3, 3, "had an error"),
        ([Script(fault="status", status=401), Script()], 1, "refused our credentials"),
        ([Script(chunks=["a", "b", "c"], fault="drop", fail_after=2), Script()], 1, "cut off"),
    ],
)
def test_transient_failures_before_the_first_token_are_retried(
    client: httpx.Client,
    start_server: StartServer,
    fake_upstream: tuple[FakeUpstream, str],
    upstream: FakeUpstream,
    scripts: list[Script],
    requests: int,
    outcome: str,
) -> None:
    upstream.script(*scripts)
    with start_server(
        provider="openai",
        model="m",
        openai_base_url=fake_upstream[1],
        openai_api_key="k",
        upstream_retries=2,
        upstream_retry_backoff=0.01,
    ) as server:
        _, frames = read_events(client, ask(client, server, "q"))
    assert len(upstream.requests) == requests
    if outcome == "answer":
        assert answer_html(frames) == "<p>Hello from the fake upstream.</p>\n"
        assert 'role="alert"' not in frames[-2].data
    else:
        assert outcome in frames[-2].data


# -- Retention -------------------------------------------------------------------------------------


def test_after_the_retention_the_events_are_gone_but_the_answer_stays(
    client: httpx.Client, start_server: StartServer
) -> None:
    with start_server(retention=0.2) as server:
        response = post_question(client, server, "short-lived")
        conversation = response.headers["HX-Push-Url"]
        events_url = server + re.search(r'hx-sse:connect="([^"]+)"', response.text).group(1)  # type: ignore[union-attr]
        _, frames = read_events(client, events_url)
        time.sleep(0.6)  # the sweeper runs every retention / 4
        # A reader that comes back now gets the answer as it ended, in one event, then `done`.
        _, late = read_events(client, events_url, last_event_id=frames[5].id)
        assert [f.event for f in late] == [None, "done"] and [f.id for f in late] == [
            str(int(frames[5].id or 0) + 1),
            str(int(frames[5].id or 0) + 2),
        ]
        assert answer_html(late) == answer_html(frames) == str(PIPELINE.render(demo_answer("short-lived")))
        assert '<dl class="timing">' in late[0].data
        page = client.get(server + conversation)
        assert page.status_code == 200 and "short-lived" in page.text and '<dl class="timing">' in page.text


def test_a_stream_read_concurrently_by_many_clients_is_identical(client: httpx.Client, demo_server: str) -> None:
    url = ask(client, demo_server, "shared")
    results: list[str] = []

    def reader() -> None:
        results.append(answer_html(read_events(client, url)[1]))

    threads = [threading.Thread(target=reader) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [str(PIPELINE.render(demo_answer("shared")))] * 5
