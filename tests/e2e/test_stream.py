"""Whole flows over real uvicorn: a question in, an SSE transcript out, through both providers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import pytest

from folyam.components import make_environment
from folyam.markdown import MarkdownPipeline
from folyam.providers.demo import demo_answer
from tests.conftest import ask, composer_form
from tests.support.fake_upstream import FakeUpstream, Script
from tests.support.servers import free_port
from tests.support.sse import Frame, answer_html, read_events, read_some

PIPELINE = MarkdownPipeline(make_environment())


def one_shot(text: str) -> str:
    return str(PIPELINE.render(text))


STATUS_PARTIAL = re.compile(r'<hx-partial hx-target="#answer-[^"]+-status" hx-swap="innerHTML">(.*)</hx-partial>', re.S)


def assert_well_formed(frames: list[Frame]) -> str:
    """Ids only go up (a replay may skip superseded live-tail states, never repeat one), the
    second-to-last frame is the status fragment and the last is the one `done` event. Returns the
    status fragment's HTML."""
    ids = [int(f.id or 0) for f in frames]
    assert ids == sorted(set(ids)) and ids[0] >= 1
    assert [f.event for f in frames].count("done") == 1
    assert frames[-1].event == "done" and frames[-1].data == ""
    assert all(f.event is None for f in frames[:-1])
    status = STATUS_PARTIAL.fullmatch(frames[-2].data)
    assert status, frames[-2].data
    return status.group(1)


def test_demo_answer_streams_to_timing_and_done(client: httpx.Client, demo_server: str) -> None:
    question = "How do rivers <form> deltas?"
    _, frames = read_events(client, ask(client, demo_server, question))

    status = assert_well_formed(frames)
    assert answer_html(frames) == one_shot(demo_answer(question))  # streamed == rendered at once
    assert '<dl class="timing">' in status
    for label in ("First token", "Total", "Chunks", "Tokens", "Speed", "Usage"):
        assert f"<dt>{label}</dt>" in status
    assert "notice--error" not in status
    # flush_interval=0 in tests: one event per delta; reading after the answer finished, the replay
    # skipped the superseded live-tail states and sent only what adds up to the page.
    assert int(frames[-1].id or 0) > 200 > len(frames)


def test_openai_answer_reaches_upstream_with_streaming_options(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=["Hello", ", ", "world", "!"]))
    _, frames = read_events(client, ask(client, openai_server, "Say hello"))

    status = assert_well_formed(frames)
    assert answer_html(frames) == "<p>Hello, world!</p>\n"
    assert "<dd>fake-model</dd>" in status
    assert "11 prompt + 4 completion = 15 tokens" in status
    [request] = upstream.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-secret"
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["model"] == "fake-model"
    assert request.body["messages"] == [{"role": "user", "content": "Say hello"}]


def test_usage_is_estimated_when_the_upstream_reports_none(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=["a", "b", "c"], usage=False))
    _, frames = read_events(client, ask(client, openai_server, "q"))
    status = assert_well_formed(frames)
    assert "<dd>≈3 (estimated)</dd>" in status
    assert "Usage" not in status


@pytest.mark.parametrize(
    ("status_code", "title", "words"),
    [
        (401, "refused our credentials", "HTTP 401"),
        (403, "refused our credentials", "HTTP 403"),
        (429, "rate limiting us", "HTTP 429"),
        (500, "had an error", "HTTP 500"),
        (503, "had an error", "HTTP 503"),
        (404, "rejected the request", "HTTP 404"),
    ],
)
def test_upstream_status_errors_end_with_an_error_fragment(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream, status_code: int, title: str, words: str
) -> None:
    upstream.script(Script(fault="status", status=status_code))
    raw, frames = read_events(client, ask(client, openai_server, "q"))

    status = assert_well_formed(frames)
    assert answer_html(frames) == ""
    assert 'role="alert"' in status and title in status and words in status
    assert "Traceback" not in raw and "sk-test-secret" not in raw
    assert '<dl class="timing">' in status  # timing still closes the answer


@pytest.mark.parametrize(
    ("fault", "title"),
    [
        ("drop", "The answer was cut off"),
        ("error_event", "The answer was cut off"),
        ("stall", "The model server stopped responding"),
    ],
)
def test_a_fault_mid_stream_keeps_what_arrived(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream, fault: str, title: str
) -> None:
    upstream.script(Script(chunks=["one ", "two ", "three ", "four"], fault=fault, fail_after=3))  # type: ignore[arg-type]
    raw, frames = read_events(client, ask(client, openai_server, "q"))

    status = assert_well_formed(frames)
    assert answer_html(frames) == "<p>one two three</p>\n"
    assert title in status
    assert "Traceback" not in raw


def test_an_upstream_that_never_answers_times_out(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(fault="hang"))
    _, frames = read_events(client, ask(client, openai_server, "q"))
    status = assert_well_formed(frames)
    assert "The model server stopped responding" in status
    assert answer_html(frames) == ""


def test_connection_refused_is_named_and_the_address_goes_to_the_log_only(
    client: httpx.Client, start_server: Callable[..., AbstractContextManager[str]], capfd: pytest.CaptureFixture[str]
) -> None:
    dead_upstream = f"http://operator:hunter2-pw@127.0.0.1:{free_port()}/v1"
    with start_server(provider="openai", model="m", openai_base_url=dead_upstream, openai_api_key="sk-x") as url:
        _, frames = read_events(client, ask(client, url, "q"))
    status = assert_well_formed(frames)
    assert "Could not reach the model server" in status
    assert "127.0.0.1" not in status and "hunter2" not in status  # a visitor learns nothing of the upstream
    logged = server_log(capfd, "Could not reach the model server")
    assert "127.0.0.1" in logged
    assert "hunter2" not in logged and "operator" not in logged


def server_log(capfd: pytest.CaptureFixture[str], until: str, timeout: float = 5) -> str:
    """What the server logged (to stderr, from its logging thread) once `until` appears in it."""
    logged = ""
    deadline = time.monotonic() + timeout
    while until not in logged and time.monotonic() < deadline:
        time.sleep(0.05)
        logged += capfd.readouterr().err
    assert until in logged, logged
    return logged


def test_reconnect_with_last_event_id_loses_and_repeats_nothing(client: httpx.Client, demo_server: str) -> None:
    url = ask(client, demo_server, "resume me")
    _, full = read_events(client, url)
    last = int(full[-1].id or 0)

    for cut in (0, 1, 5, last // 2, last - 1):
        seen = [f for f in full if int(f.id or 0) <= cut]
        _, rest = read_events(client, url, last_event_id=str(cut))
        _, by_query = read_events(client, f"{url}?after={cut}")
        assert rest == by_query
        assert all(int(f.id or 0) > cut for f in rest)
        resumed = seen + rest
        assert_well_formed(resumed)
        assert answer_html(resumed) == answer_html(full) == one_shot(demo_answer("resume me"))
        # Every appended block arrives exactly once, whatever the cut.
        assert body_appends(resumed) == body_appends(full)
    _, nothing = read_events(client, url, last_event_id=str(last))
    assert nothing == []


def body_appends(frames: list[Frame]) -> list[str]:
    return [f.data for f in frames if '-body" hx-swap="beforeend"' in f.data]


def test_a_live_stream_dropped_midway_resumes_exactly(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    chunks = [f"w{n} " for n in range(40)]
    upstream.script(Script(chunks=chunks, delay=0.01))
    url = ask(client, openai_server, "slow")

    seen = read_some(client, url, 5)  # the client goes away mid-answer
    assert seen and seen[-1].event is None  # we really left before the end

    _, rest = read_events(client, url, last_event_id=seen[-1].id)
    resumed = seen + rest
    assert_well_formed(resumed)
    assert answer_html(resumed) == one_shot("".join(chunks))


def test_odd_cursors_are_handled(client: httpx.Client, demo_server: str) -> None:
    url = ask(client, demo_server, "cursors")
    read_events(client, url)  # to its end: a replay of an ended answer is the same whatever its cursor
    _, full = read_events(client, url)
    assert read_events(client, url, last_event_id="9" * 5000)[1] == full  # not a 500
    assert read_events(client, url, last_event_id="not-a-number")[1] == full
    assert read_events(client, f"{url}?after=-3")[1] == full
    assert client.get(f"{url}?after=abc").status_code == 400


def test_unknown_generation_and_bad_conversation_are_404(client: httpx.Client, demo_server: str) -> None:
    assert client.get(f"{demo_server}/generations/no-such-generation/events").status_code == 404
    assert client.get(f"{demo_server}/generations/x/events").status_code == 404
    bad = client.post(f"{demo_server}/chat/!!/messages", data={"query": "q"})
    assert bad.status_code == 404


@pytest.mark.parametrize(
    ("query", "status_code", "words"),
    [
        ("", 422, "Nothing to ask"),
        ("   \n\t ", 422, "Nothing to ask"),
        ("x" * 8001, 413, "the limit is 8,000"),
    ],
)
def test_bad_queries_get_an_error_fragment_and_start_nothing(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream, query: str, status_code: int, words: str
) -> None:
    form = composer_form(client, openai_server + "/")
    response = client.post(openai_server + form.pop("action"), data={**form, "query": query})
    assert response.status_code == status_code
    assert response.text.startswith('<hx-partial hx-target="#composer-error" hx-swap="innerHTML">')
    assert words in response.text
    assert "hx-sse:connect" not in response.text
    assert upstream.requests == []


def test_a_query_at_the_limit_is_accepted(client: httpx.Client, demo_server: str) -> None:
    url = ask(client, demo_server, "y" * 8000)
    _, frames = read_events(client, url)
    assert_well_formed(frames)


HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    '<div hx-get="/boom" hx-trigger=load>',
    "lone\rreturn",
    "\n\nevent: done\ndata: x\n\n",
    "id: 999\r\n\r\nretry: 1\n",
    "end",
]


def test_hostile_model_text_is_escaped_and_cannot_forge_sse_fields(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=HOSTILE))
    raw, frames = read_events(client, ask(client, openai_server, "be evil"))

    assert_well_formed(frames)  # exactly one `done`, last; ids untouched
    assert not re.search(r"^retry:", raw, re.M)
    body = answer_html(frames)
    assert body == one_shot("".join(HOSTILE))
    assert set(re.findall(r"<([a-z0-9]+)", body)) <= {"p"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "event: done" in body


def test_the_api_key_never_reaches_the_browser(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    page = client.get(f"{openai_server}/")
    upstream.script(Script(fault="status", status=401))
    raw, _ = read_events(client, ask(client, openai_server, "q"))
    assert "sk-test-secret" not in page.text + raw


def test_thinking_streams_apart_and_an_output_limit_is_said(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream
) -> None:
    thinking = ["Let me **think**", " about ", "it.\n\nSecond thought."]
    upstream.script(Script(reasoning=thinking, chunks=["Cut", " off"], finish_reason="length"))
    _, frames = read_events(client, ask(client, openai_server, "think first"))
    status = assert_well_formed(frames)
    assert answer_html(frames) == one_shot("Cut off")
    assert answer_html(frames, reasoning=True) == one_shot("".join(thinking))
    assert "notice--warning" in status and "output limit" in status and "Regenerate" in status
    assert "<dt>Thinking</dt>" in status and "think" not in status.split("answer__source")[1]
    # Reloaded: the thinking block closed above the answer, from the store; the export quotes it apart.
    home = client.get(openai_server + "/").text
    path = re.search(r'class="conversation__link" href="(/chat/[^"]+)"', home)
    assert path
    page = client.get(openai_server + path.group(1)).text
    assert '<details class="answer__thinking">' in page and "Thought for" in page
    body = re.search(r'<div class="answer__body"[^>]*>(.*?)</div>', page, re.S)
    assert body and "think" not in body.group(1) and "Cut off" in body.group(1)
    assert upstream.requests[-1].messages[-1] == {"role": "user", "content": "think first"}
    exported = client.get(openai_server + path.group(1) + "/export").text
    assert "## Thinking\n\n> Let me **think** about it.\n>\n> Second thought.\n" in exported


@pytest.mark.parametrize(
    ("script", "words", "tone", "action"),
    [
        (Script(chunks=["a"], finish_reason="content_filter"), "content filter stopped", "warning", "Regenerate"),
        (Script(chunks=["a"], finish_reason=None, done=False), "ended the answer early", "error", "Retry"),
    ],
)
def test_a_cut_answer_says_so_and_keeps_what_arrived(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream, script: Script, words: str, tone: str, action: str
) -> None:
    upstream.script(script)
    _, frames = read_events(client, ask(client, openai_server, "q"))
    status = assert_well_formed(frames)
    assert answer_html(frames) == one_shot("a")
    assert words in status and f"notice--{tone}" in status and action in status


def test_a_refusal_is_the_answer(client: httpx.Client, openai_server: str, upstream: FakeUpstream) -> None:
    upstream.script(Script(chunks=[], refusal=["I can't help ", "with that."]))
    _, frames = read_events(client, ask(client, openai_server, "q"))
    assert_well_formed(frames)
    assert answer_html(frames) == one_shot("I can't help with that.")
    assert any('hx-swap="beforebegin"' in f.data and "declined to answer" in f.data for f in frames)
