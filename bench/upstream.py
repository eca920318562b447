"""A fast fake OpenAI-compatible upstream for the benchmarks, served by uvicorn in its own process.

It is the tests' `FakeUpstream` (tests/support/fake_upstream.py) with one default script for every
request: `--chunks` content chunks of a short word each (like a real model's tokens), `--delay` seconds
apart on a schedule from the first (as a model generates: a late wake-up of this busy process does not
push back every chunk after it), with a blank line after every `--paragraph` chunks (default: none, one
long paragraph), then the finish chunk, the usage chunk and `[DONE]`. Run it from the repository root:

    .venv/bin/python -m bench.upstream --port 8101 --chunks 500 --delay 0
"""

from __future__ import annotations

import argparse
import itertools

import uvicorn

from tests.support.fake_upstream import FakeUpstream, Script

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
        super().__init__()
        self._default = script

    def _next_script(self) -> Script:
        return self._default


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
    uvicorn.run(upstream, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
