"""Whole SSE transcripts as snapshots: what a browser receives, event by event."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
from syrupy.assertion import SnapshotAssertion

from tests.conftest import ask
from tests.support.fake_upstream import FakeUpstream, Script
from tests.support.sse import read_events


def normalise(raw: str, url: str) -> str:
    raw = raw.replace(url.split("/")[-2], "GENERATION")
    # The conversation's id and the session's CSRF token are random.
    raw = re.sub(r"/chat/[A-Za-z0-9_-]+/exchanges/", "/chat/CONVERSATION/exchanges/", raw)
    raw = re.sub(r'name="csrf_token" value="[0-9a-f]+"', 'name="csrf_token" value="TOKEN"', raw)
    # Timing values depend on the machine; the labels, chunk and token counts do not.
    raw = re.sub(r"Answer finished in [\d.]+ s", "Answer finished in N s", raw)
    return re.sub(r"<dd>[\d,.]+ (ms|s|tokens/s)</dd>", r"<dd>N \1</dd>", raw)


MARKDOWN_CHUNKS = [
    "# Ti", "tle\n", "\nSome **bo", "ld** text", " and a [li", "nk](https://example.org).\n",
    "\n- one\n", "- two\n", "\n```py", "thon\nprint(", "'hi')\n```\n", "\n| a | b |\n|---|---|\n",
    "| 1 | 2 |\n", "\nThe end.",
]  # fmt: skip


def test_scripted_markdown_answer_transcript(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream, snapshot: SnapshotAssertion
) -> None:
    """Every delta its own event (flush interval 0): finished blocks are appended once, the open
    block replaces the live tail, and the tail ends empty."""
    # Paced, so the client follows live and sees every event (a replay would skip superseded tails), and
    # connected before the first one.
    upstream.script(Script(chunks=MARKDOWN_CHUNKS, delay=0.05, first_delay=0.5))
    url = ask(client, openai_server, "markdown please")
    raw, frames = read_events(client, url)
    assert [f.id for f in frames] == [str(n) for n in range(1, len(frames) + 1)]
    assert normalise(raw, url) == snapshot


def test_demo_answer_transcript(
    client: httpx.Client, start_server: Callable[..., AbstractContextManager[str]], snapshot: SnapshotAssertion
) -> None:
    """The demo model at full speed with a long flush interval: the first deltas (those it yields before
    its first await, 32 tokens) are flushed at once, the rest is coalesced into the final flush, then the
    timing and `done`."""
    with start_server(flush_interval=60.0) as server:
        url = ask(client, server, "Why is the sky blue?")
        raw, _ = read_events(client, url)
    assert normalise(raw, url) == snapshot


def test_scripted_reasoning_answer_transcript(
    client: httpx.Client, openai_server: str, upstream: FakeUpstream, snapshot: SnapshotAssertion
) -> None:
    """The thinking block comes into its slot open, takes its own body and tail updates, then its
    summary alone is swapped (marked to close) as the answer's first text arrives."""
    upstream.script(
        Script(
            reasoning=["First, ", "**why**?\n", "\nThen how."],
            chunks=["It is ", "*so*."],
            delay=0.05,
            first_delay=0.5,
            last_delay=0.2,
        )
    )
    url = ask(client, openai_server, "think about it")
    raw, frames = read_events(client, url)
    assert [f.id for f in frames] == [str(n) for n in range(1, len(frames) + 1)]
    # How long it thought depends on the machine.
    assert normalise(re.sub(r"Thought for [\d.]+ s", "Thought for N s", raw), url) == snapshot
