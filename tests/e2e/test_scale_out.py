"""Any process serves any request: two app processes sharing PostgreSQL and Redis (real servers on free
ports), asked directly, not through a balancer. Restarts keep every conversation in both configurations;
a process killed mid-answer leaves nobody waiting; a backend that goes away is a clear error, and service
resumes when it is back."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app import create_app
from folyam.components import make_environment
from folyam.markdown import MarkdownPipeline
from folyam.settings import Settings
from tests.conftest import HTMX_HEADERS, TEST_SETTINGS, ask, composer_form, openai_settings
from tests.support.app_process import app_process as run_app
from tests.support.app_process import clean_env
from tests.support.fake_upstream import FakeUpstream, Script
from tests.support.servers import free_port, serve
from tests.support.services import Postgres, Redis
from tests.support.sse import answer_html, parse_frames, read_events, read_some

PIPELINE = MarkdownPipeline(make_environment())
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shared(postgres: Postgres, redis: Redis, fake_upstream: tuple[FakeUpstream, str], tmp_path: Path) -> Settings:
    """Settings for processes that share a fresh PostgreSQL database and Redis database."""
    return dataclasses.replace(
        openai_settings(TEST_SETTINGS, fake_upstream[1]),
        data_dir=tmp_path,
        database_url=postgres.create_database(),
        redis_url=redis.fresh_url(),
    )


@contextmanager
def two_processes(settings: Settings) -> Iterator[tuple[str, str]]:
    with serve(create_app(settings)) as a, serve(create_app(settings)) as b:
        yield a, b


def events_path(response: httpx.Response) -> str:
    match = re.search(r'hx-sse:connect="(/generations/[^"?]+/events)', response.text)
    assert match, response.text
    return match.group(1)


def post(client: httpx.Client, base: str, form: dict[str, str], query: str) -> httpx.Response:
    response = client.post(
        base + form["action"], data={k: v for k, v in form.items() if k != "action"} | {"query": query}
    )
    response.raise_for_status()
    return response


# -- Any process serves any request -------------------------------------------------------------------


def test_ask_on_one_process_stream_from_the_other(
    client: httpx.Client, shared: Settings, upstream: FakeUpstream
) -> None:
    chunks = ["# Heading\n\n", "Some ", "**bold** ", "text.\n\n", "- a\n", "- b\n"]
    upstream.script(Script(chunks=chunks, delay=0.02))
    with two_processes(shared) as (a, b):
        asked = post(client, a, composer_form(client, a + "/"), "where?")
        _, frames = read_events(client, b + events_path(asked))
        assert answer_html(frames) == str(PIPELINE.render("".join(chunks)))
        assert frames[-1].event == "done" and '<dl class="timing">' in frames[-2].data
        # And the conversation page, from either.
        conversation = asked.headers["HX-Push-Url"]
        for base in (a, b):
            page = client.get(base + conversation)
            assert page.status_code == 200 and "<strong>bold</strong>" in page.text and "where?" in page.text


def test_stop_sent_to_one_process_closes_the_upstream_held_by_the_other_within_a_second(
    client: httpx.Client, shared: Settings, upstream: FakeUpstream
) -> None:
    upstream.script(Script(chunks=[f"word{n} " for n in range(400)], delay=0.02))
    with two_processes(shared) as (a, b):
        form = composer_form(client, a + "/")
        asked = post(client, a, form, "long")
        seen = read_some(client, b + events_path(asked), 5)
        stopped_at = time.monotonic()
        response = client.post(
            b + events_path(asked).replace("/events", "/stop"), headers={"X-CSRF-Token": form["csrf_token"]}
        )
        assert response.status_code == 204
        [request] = upstream.requests
        deadline = time.monotonic() + 2
        while request.disconnected_at is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert request.disconnected_at is not None and request.disconnected_at - stopped_at < 1.0
        _, rest = read_events(client, a + events_path(asked), last_event_id=seen[-1].id)
        assert "Stopped" in rest[-2].data and rest[-1].event == "done"


def test_reconnects_alternating_between_processes_lose_and_repeat_nothing(
    client: httpx.Client, shared: Settings, upstream: FakeUpstream
) -> None:
    chunks = [f"Sentence {n} with *some* words.\n\n" if n % 5 == 4 else f"Part {n} " for n in range(120)]
    upstream.script(Script(chunks=chunks, delay=0.01))
    with two_processes(shared) as (a, b):
        path = events_path(post(client, a, composer_form(client, a + "/"), "drops"))
        frames = read_some(client, a + path, 5)
        for turn in range(40):
            base = (b, a)[turn % 2]
            with client.stream("GET", base + path, headers={"Last-Event-ID": frames[-1].id or "0"}) as response:
                buffer = ""
                for text in response.iter_text():
                    buffer += text
                    if buffer.count("\r\n\r\n") >= 3 or "event: done" in buffer:
                        break
            complete, _, _ = buffer.rpartition("\r\n\r\n")
            frames += [f for f in parse_frames(complete + "\r\n\r\n") if not f.comment]
            if frames[-1].event == "done":
                break
        ids = [int(f.id or 0) for f in frames]
        assert ids == sorted(set(ids)), "an event came twice or out of order"
        assert frames[-1].event == "done"
        assert answer_html(frames) == str(PIPELINE.render("".join(chunks)))


def test_the_same_request_id_sent_to_both_processes_calls_the_model_once(
    client: httpx.Client, shared: Settings, upstream: FakeUpstream
) -> None:
    upstream.script(Script(delay=0.05))
    with two_processes(shared) as (a, b):
        form = composer_form(client, a + "/")
        first = post(client, a, form, "once")
        again = post(client, b, form, "once")
        generation = re.compile(r'id="answer-([^"]+)"')
        assert generation.search(first.text).group(1) == generation.search(again.text).group(1)  # type: ignore[union-attr]
        read_events(client, a + events_path(first))
        assert len(upstream.requests) == 1


def test_the_running_limit_holds_across_processes(client: httpx.Client, shared: Settings) -> None:
    settings = dataclasses.replace(shared, provider="demo", demo_tokens_per_second=2.0, max_running_per_session=2)
    with two_processes(settings) as (a, b):
        codes = [post_status(client, base) for base in (a, b, a, b)]
        assert codes == [200, 200, 429, 429]


def post_status(client: httpx.Client, base: str) -> int:
    form = composer_form(client, base + "/")
    return client.post(base + form.pop("action"), data={**form, "query": "q"}).status_code


def test_the_rate_limit_holds_across_processes(shared: Settings) -> None:
    settings = dataclasses.replace(shared, rate_limit_per_minute=3)
    with two_processes(settings) as (a, b), httpx.Client(timeout=10, headers=HTMX_HEADERS) as client:
        assert [post_status(client, base) for base in (a, b, a, b)] == [200, 200, 200, 429]


# -- Restarts keep everything ---------------------------------------------------------------------------


@pytest.mark.parametrize("configuration", ["sqlite", "postgres-redis"])
def test_a_restart_keeps_every_conversation_and_its_context(
    configuration: str, client: httpx.Client, shared: Settings, upstream: FakeUpstream
) -> None:
    settings = (
        shared if configuration == "postgres-redis" else dataclasses.replace(shared, database_url=None, redis_url=None)
    )
    upstream.script(Script(chunks=["Paris", "."]), Script(chunks=["About ", "2 million", "."]))
    with serve(create_app(settings)) as server:
        asked = post(client, server, composer_form(client, server + "/"), "Capital of France?")
        read_events(client, server + events_path(asked))
        conversation = asked.headers["HX-Push-Url"]
    with serve(create_app(settings)) as server:  # a new process: nothing in memory
        page = client.get(server + conversation)
        assert page.status_code == 200 and "Capital of France?" in page.text and "<p>Paris.</p>" in page.text
        assert '<dl class="timing">' in page.text and "hx-sse:connect" not in page.text
        # The same session cookie and CSRF token still work (the secret key was kept), and a follow-up
        # question carries the conversation so far.
        url = ask(client, server, "How many people live there?", conversation_url=conversation)
        read_events(client, url)
    assert upstream.requests[1].body["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "How many people live there?"},
    ]


# -- A process that dies ------------------------------------------------------------------------------


@contextmanager
def app_process(settings: Settings) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python app.py` with these settings (the ones these tests use), from its environment."""
    env = clean_env(
        FOLYAM_DATA_DIR=str(settings.data_dir),
        FOLYAM_FLUSH_INTERVAL="0",
        FOLYAM_BUSY_FLUSH_INTERVAL="0",
        FOLYAM_RATE_LIMIT_PER_MINUTE="100000",
    )
    if settings.database_url:
        env["FOLYAM_DATABASE_URL"] = settings.database_url
    if settings.redis_url:
        env["FOLYAM_REDIS_URL"] = settings.redis_url
    if settings.openai_base_url:
        env |= {"OPENAI_BASE_URL": settings.openai_base_url, "OPENAI_API_KEY": "sk-test", "FOLYAM_MODEL": "m"}
    else:
        env |= {"FOLYAM_DEMO_TOKENS_PER_SECOND": str(settings.demo_tokens_per_second)}
    with run_app(env) as running:
        yield running


def test_a_process_killed_mid_answer_leaves_nobody_waiting(
    client: httpx.Client, shared: Settings, upstream: FakeUpstream
) -> None:
    # A reasoning model: its thinking, then its answer. What arrived of both is kept.
    thoughts = [f"thought{n} " for n in range(10)]
    upstream.script(Script(reasoning=thoughts, chunks=[f"word{n} " for n in range(1000)], delay=0.02))
    with app_process(shared) as (doomed, a), serve(create_app(shared)) as b:
        asked = post(client, a, composer_form(client, a + "/"), "long answer")
        conversation = asked.headers["HX-Push-Url"]
        seen = read_some(client, b + events_path(asked), 20)
        assert "word0" in "".join(frame.data for frame in seen)  # thinking over, the answer begun
        doomed.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        _, rest = read_events(client, b + events_path(asked), last_event_id=seen[-1].id)
        assert time.monotonic() - killed_at < 10, "the stream did not end within 10 s"
        frames = seen + rest
        assert frames[-1].event == "done" and "The server stopped while answering" in frames[-2].data
        shown = answer_html(frames)
        assert shown.startswith("<p>word0 word1") and "word999" not in shown
        assert "thought0 thought1" in frames[-2].data and "thought9" in frames[-2].data  # the ended answer's
        page = client.get(b + conversation)  # a reload: the interrupted answer, as far as it came
        assert "The server stopped while answering" in page.text and "word0 word1" in page.text
        assert "thought0 thought1" in page.text and "thought9" in page.text
        assert "hx-sse:connect" not in page.text


def test_one_process_marks_what_a_crash_left_running_as_interrupted(client: httpx.Client, tmp_path: Path) -> None:
    settings = dataclasses.replace(TEST_SETTINGS, data_dir=tmp_path, demo_tokens_per_second=5.0)
    with app_process(settings) as (doomed, base):
        asked = post(client, base, composer_form(client, base + "/"), "slow")
        read_some(client, base + events_path(asked), 3)
        doomed.send_signal(signal.SIGKILL)
    with serve(create_app(settings)) as server:
        page = client.get(server + asked.headers["HX-Push-Url"])
        assert "The server stopped while answering" in page.text and "hx-sse:connect" not in page.text
        _, frames = read_events(client, server + events_path(asked))
        assert frames[-1].event == "done" and "The server stopped while answering" in frames[-2].data


# -- Backends that go away ------------------------------------------------------------------------------


def test_redis_unreachable_is_a_clear_error_and_service_resumes(
    client: httpx.Client, shared: Settings, redis: Redis
) -> None:
    settings = dataclasses.replace(shared, provider="demo", backend_timeout=1.0)
    with serve(create_app(settings)) as server:
        form = composer_form(client, server + "/")
        redis.stop()
        try:
            started = time.monotonic()
            refused = client.post(server + form["action"], data={**form, "query": "q"})
            assert refused.status_code == 503 and "Service unavailable" in refused.text
            assert time.monotonic() - started < 5
        finally:
            redis.start()
        resumed = client.post(server + form["action"], data={**form, "query": "q"})
        assert resumed.status_code == 200


def test_the_database_unreachable_is_a_clear_error_and_service_resumes(
    client: httpx.Client, shared: Settings, postgres: Postgres
) -> None:
    settings = dataclasses.replace(shared, provider="demo", backend_timeout=1.0)
    with serve(create_app(settings)) as server:
        form = composer_form(client, server + "/")
        postgres.stop()
        try:
            started = time.monotonic()
            refused = client.get(server + "/chat/no-such-conversation-1")
            assert refused.status_code == 503 and "Service unavailable" in refused.text
            assert time.monotonic() - started < 5
        finally:
            postgres.start()
        resumed = client.post(server + form["action"], data={**form, "query": "q"})
        assert resumed.status_code == 200


# -- Several workers on one port ------------------------------------------------------------------------


def test_several_workers_need_redis(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "app.py", "--workers", "2", "--port", str(free_port())],
        cwd=ROOT, env=clean_env(FOLYAM_DATA_DIR=str(tmp_path)), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2 and "need FOLYAM_REDIS_URL" in result.stderr


def test_a_sigint_to_the_parent_alone_stops_every_worker(redis: Redis, tmp_path: Path) -> None:
    # `kill -INT <pid>` (or a supervisor that signals the main process only): no terminal sends it to the
    # workers, so the parent must.
    env = clean_env(FOLYAM_DATA_DIR=str(tmp_path), FOLYAM_REDIS_URL=redis.fresh_url())
    process = subprocess.Popen(
        [sys.executable, "app.py", "--workers", "2", "--port", str(free_port())],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    workers: list[int] = []
    try:
        assert process.stdout is not None
        assert "2 worker processes" in process.stdout.readline()
        deadline = time.monotonic() + 20
        while len(workers := _children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) >= 2
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the workers; multiprocessing's resource tracker too)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_several_workers_serve_one_port(client: httpx.Client, redis: Redis, tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        FOLYAM_DATA_DIR=str(tmp_path), FOLYAM_REDIS_URL=redis.fresh_url(),
        FOLYAM_DEMO_TOKENS_PER_SECOND="0", FOLYAM_DEMO_FIRST_TOKEN_DELAY="0",
    )  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "app.py", "--workers", "2", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert "2 worker processes" in process.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                client.get(base + "/").raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        for n in range(6):  # new connections: the kernel spreads them over the workers
            with httpx.Client(timeout=10, headers=HTMX_HEADERS) as fresh:
                _, frames = read_events(fresh, ask(fresh, base, f"question {n}"))
                assert frames[-1].event == "done"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()
    assert process.returncode == 0
