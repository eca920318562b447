"""The whole SSE transcript of a scripted demo answer, as a snapshot."""

from __future__ import annotations

import re

import httpx
from syrupy.assertion import SnapshotAssertion

from tests.conftest import ask
from tests.support.sse import read_events


def normalise(raw: str, generation_id: str) -> str:
    raw = raw.replace(generation_id, "GENERATION")
    # Timing values depend on the machine; the labels, chunk and token counts do not.
    raw = re.sub(r"<dd>[\d,.]+ (ms|s|tokens/s)</dd>", r"<dd>N \1</dd>", raw)
    return raw


def test_demo_answer_transcript(client: httpx.Client, demo_server: str, snapshot: SnapshotAssertion) -> None:
    url = ask(client, demo_server, "Why is the sky blue?")
    generation_id = url.split("/")[-2]
    raw, _ = read_events(client, url)
    assert normalise(raw, generation_id) == snapshot
