"""The benchmarks' fake upstream answers what the tests' FakeUpstream answers, byte for byte: the
benchmark's fast path (frames encoded once) must not change what the app under test reads."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from bench.upstream import BenchUpstream, answer_chunks
from tests.support.fake_upstream import FakeUpstream, Script


async def _answer(app: Any, body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[float]]:
    """The ASGI messages one chat request gets, and when each body message went out."""
    request = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

    async def receive() -> dict[str, Any]:
        if request:
            return request.pop()
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    sent: list[dict[str, Any]] = []
    times: list[float] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        times.append(time.perf_counter())

    scope = {"type": "http", "path": "/v1/chat/completions", "method": "POST", "headers": []}
    await app(scope, receive, send)
    return sent, times


@pytest.mark.parametrize("usage", [False, True])
@pytest.mark.parametrize("paragraph", [0, 4])
async def test_the_bench_upstream_sends_what_the_fake_upstream_sends(usage: bool, paragraph: int) -> None:
    script = Script(chunks=answer_chunks(12, paragraph), delay=0.002, on_schedule=True)
    body = {"model": "bench-model", "stream": True, **({"stream_options": {"include_usage": True}} if usage else {})}
    fake = FakeUpstream()
    fake.script(script)
    expected, _ = await _answer(fake, body)
    upstream = BenchUpstream(script)
    for _ in range(2):  # the second answer comes from the frames encoded for the first
        got, times = await _answer(upstream, body)
        assert got == expected
    # On the model's schedule: the 12 chunks take 11 delays.
    assert times[-1] - times[1] >= 11 * 0.002


async def test_the_bench_upstream_stops_when_the_client_leaves() -> None:
    script = Script(chunks=answer_chunks(1000), delay=0.01, on_schedule=True)
    messages = [{"type": "http.request", "body": b'{"model": "m", "stream": true}', "more_body": False}]
    left = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await left.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if len(sent) == 5:
            left.set()

    scope = {"type": "http", "path": "/v1/chat/completions", "method": "POST", "headers": []}
    await asyncio.wait_for(BenchUpstream(script)(scope, receive, send), timeout=5)
    assert 5 <= len(sent) < 10
    assert all(message.get("more_body", True) for message in sent[1:])  # it never finished the answer


def test_the_bench_upstream_refuses_a_script_it_would_not_follow() -> None:
    with pytest.raises(ValueError, match="plain answer"):
        BenchUpstream(Script(chunks=answer_chunks(3), delay=0.01, on_schedule=True, fault="drop"))
    with pytest.raises(ValueError, match="plain answer"):
        BenchUpstream(Script(chunks=answer_chunks(3), delay=0.01, on_schedule=False))
