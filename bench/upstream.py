"""A fast fake OpenAI-compatible upstream for the benchmarks, served by uvicorn in its own process.

It is the tests' `FakeUpstream` (tests/support/fake_upstream.py) with one default script for every
request: `--chunks` content chunks of a short word each (like a real model's tokens), `--delay` seconds
apart on a schedule from the first (as a model generates: a late wake-up of this busy process does not
push back every chunk after it), with a blank line after every `--paragraph` chunks (default: none, one
long paragraph), then the finish chunk, the usage chunk and `[DONE]`. `GET /bench/stalls` lists when
this process's event loop was late (see `watch_loop`), so a benchmark can tell the upstream's own gaps
from the app's. Run it from the repository root:

    .venv/bin/python -m bench.upstream --port 8101 --chunks 500 --delay 0
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
from typing import Any

import uvicorn

from bench.streams import watch_loop
from folyam.server import COLLECTOR_THRESHOLDS
from tests.support.fake_upstream import FakeUpstream, RecordedRequest, Script, _chunk, _deltas

# Token-sized pieces of text. A paragraph break is appended to a word; the naive relay's f-string then
# writes empty frames after that event, which its clients (and the benchmark) skip.
SENTENCE = "The answer streams token by token, and each piece is rendered on the server before it reaches the browser."
WORDS = tuple(f" {word}" for word in SENTENCE.split(" "))


def answer_chunks(count: int, paragraph: int = 0) -> list[str]:
    """`count` word-sized chunks cycling through WORDS; every `paragraph`-th ends with a blank line
    (0: the answer is one long paragraph)."""
    words = itertools.islice(itertools.cycle(WORDS), count)
    return [word + "\n\n" if paragraph and index % paragraph == 0 else word for index, word in enumerate(words, 1)]


class BenchUpstream(FakeUpstream):
    """A FakeUpstream whose every request gets the same script (nothing is queued in a benchmark)."""

    def __init__(self, script: Script) -> None:
        # `_chat` replays the plain answer only: no faults, no raw body, no extra delays.
        plain = Script(chunks=script.chunks, delay=script.delay, on_schedule=True)
        if script != plain:
            raise ValueError("BenchUpstream sends a plain answer on a schedule: chunks and delay only")
        super().__init__()
        self._default = script
        self._stalls: list[tuple[float, float]] = []
        self._probe: asyncio.Task[None] | None = None
        self._frames: dict[tuple[str, bool], list[bytes]] = {}

    def _next_script(self) -> Script:
        return self._default

    async def _chat(self, record: RecordedRequest, disconnected: asyncio.Task[None], send: Any) -> None:
        """FakeUpstream's answer, the same bytes on the same schedule, from frames encoded once per model:
        encoding each chunk anew and waiting with `asyncio.wait` cost this process ~65 µs per chunk, and
        a busy upstream sends chunks late, which showed as the app's gaps."""
        script = self._default
        include_usage = bool((record.body.get("stream_options") or {}).get("include_usage"))
        frames = self._answer_frames(record.body.get("model", "fake-model"), include_usage)
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        role, *chunks, ending = frames
        deltas = len(_deltas(script))
        await send({"type": "http.response.body", "body": role, "more_body": True})
        loop = asyncio.get_running_loop()
        began = loop.time()
        for index, frame in enumerate(chunks):
            wait = began + index * script.delay - loop.time() if index < deltas else 0
            if wait > 0:
                await asyncio.sleep(wait)
            if disconnected.done():
                return  # the client went away (seen within a chunk's delay)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": ending, "more_body": False})

    def _answer_frames(self, model: str, include_usage: bool) -> list[bytes]:
        """The role chunk, each content chunk, the finish (and usage) chunks, then `[DONE]`."""
        key = (model, include_usage)
        if key not in self._frames:
            script = self._default
            payloads = [_chunk(model, {"role": "assistant", "content": ""})]
            payloads += [_chunk(model, {field: text}) for field, text in _deltas(script)]
            if script.finish_reason is not None:
                payloads.append(_chunk(model, {}, finish_reason=script.finish_reason))
            if include_usage:
                completion = len(_deltas(script))
                usage = {"prompt_tokens": 11, "completion_tokens": completion, "total_tokens": 11 + completion}
                payloads.append({**_chunk(model, {}), "choices": [], "usage": usage})
            frames = [b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n" for payload in payloads]
            self._frames[key] = [*frames, b"data: [DONE]\n\n"]
        return self._frames[key]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/stalls":
            body = json.dumps(self._stalls).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if self._probe is None and scope["type"] == "http":  # on this process's loop, from the first request
            self._probe = asyncio.create_task(watch_loop(self._stalls))
        await super().__call__(scope, receive, send)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fast fake OpenAI-compatible upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=500, help="content chunks per answer")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--paragraph", type=int, default=0, help="chunks per paragraph (0: one paragraph)")
    args = parser.parse_args(argv)
    upstream = BenchUpstream(
        Script(chunks=answer_chunks(args.chunks, args.paragraph), delay=args.delay, on_schedule=True)
    )
    # Collections far apart, as in the app (folyam.server.settle_collector): with Python's defaults a full
    # collection of this busy process stood it still for 60 ms, every answer's chunks late meanwhile.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    uvicorn.run(upstream, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
