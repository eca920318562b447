"""SIGTERM: no new answers, running ones finish within the grace period or end with a notice."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import HTMX_HEADERS, ask
from tests.e2e.test_resilience import post_question
from tests.support.app_process import app_process as run_app
from tests.support.app_process import clean_env
from tests.support.sse import Frame, read_events

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def app_process(**env: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    with run_app(clean_env(**env)) as (process, url):
        yield process, url


def read_in_background(client: httpx.Client, url: str) -> tuple[threading.Thread, list[list[Frame]]]:
    result: list[list[Frame]] = []
    thread = threading.Thread(target=lambda: result.append(read_events(client, url)[1]), daemon=True)
    thread.start()
    return thread, result


@pytest.mark.parametrize(
    ("grace", "ends_with"),
    [("0.5", "The server is shutting down"), ("30", '<dl class="timing">')],
)
def test_sigterm_drains_running_answers_and_refuses_new_ones(grace: str, ends_with: str) -> None:
    env = {"FOLYAM_DEMO_TOKENS_PER_SECOND": "100", "FOLYAM_DEMO_FIRST_TOKEN_DELAY": "0", "FOLYAM_SHUTDOWN_GRACE": grace}
    with app_process(**env) as (process, url), httpx.Client(timeout=15, headers=HTMX_HEADERS) as client:
        thread, frames = read_in_background(client, ask(client, url, "a long one"))
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        refused = post_question(client, url, "too late")
        assert refused.status_code == 503
        assert "Server restarting" in refused.text

        thread.join(timeout=15)
        assert not thread.is_alive(), "the stream was left hanging"
        [received] = frames
        assert received[-1].event == "done"
        assert ends_with in received[-2].data
        assert process.wait(timeout=15) == 0
