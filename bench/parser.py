"""Parser benchmark: CPU per chunk to frame and decode a model server's stream — the provider's hot path
without the network — over 10,000 chat-completion chunks of a few dialects, each chunk arriving as its
own network read ("per read") or 64 KiB of them at a time ("batched").

    .venv/bin/python bench/parser.py
    .venv/bin/python bench/parser.py --root /tmp/folyam-before   # an older checkout, to compare

An older checkout (before the dialects work) read lines with httpx's text line decoder and decoded each
`data:` payload with `_pieces`; that loop is measured for it, so the figures compare like for like.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

Parse = Callable[[list[bytes]], int]


def _chunk(delta: dict[str, Any], **extra: Any) -> bytes:
    body = {
        "id": "chatcmpl-9P4UJf7DEdyXVro2VOMRMT9qKR0bC",
        "object": "chat.completion.chunk",
        "created": 1_733_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
        **extra,
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def streams(count: int) -> dict[str, list[bytes]]:
    words = [f" word{i % 97}" for i in range(count)]
    end = [_chunk({}).replace(b'"finish_reason":null', b'"finish_reason":"stop"'), b"data: [DONE]\n\n"]
    half = count // 2
    return {
        "content": [_chunk({"content": w}) for w in words] + end,
        "reasoning_content": [_chunk({"content": None, "reasoning_content": w}) for w in words[:half]]
        + [_chunk({"content": w, "reasoning_content": None}) for w in words[half:]]
        + end,
        "<think> tags": [_chunk({"content": "<think>"})]
        + [_chunk({"content": w}) for w in words[:half]]
        + [_chunk({"content": "</think>\n\n"})]
        + [_chunk({"content": w}) for w in words[half:]]
        + end,
        "ollama (role each chunk)": [_chunk({"role": "assistant", "content": w}) for w in words] + end,
    }


def batched(reads: list[bytes], size: int = 65_536) -> list[bytes]:
    body = b"".join(reads)
    return [body[i : i + size] for i in range(0, len(body), size)]


def parser(root: Path) -> Parse:
    """The checkout's parse loop: bytes in, the number of pieces out."""
    sys.path.insert(0, str(root))
    try:
        from folyam.providers import openai_chat
        from folyam.redaction import Redactor
    finally:
        sys.path.remove(str(root))
    redact = Redactor()
    if hasattr(openai_chat, "_pieces"):  # before: httpx's line decoder over text, then `_pieces`
        from httpx2._decoders import LineDecoder, TextDecoder

        pieces_of = openai_chat._pieces

        def before(reads: list[bytes]) -> int:
            text, lines, count = TextDecoder(), LineDecoder(), 0
            for read in reads:
                for line in lines.decode(text.decode(read)):
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        return count
                    count += len(pieces_of(payload, redact))
            return count

        return before

    from folyam.providers._chunks import ChunkReader
    from folyam.providers._sse import ERROR, EventStreamDecoder

    if hasattr(openai_chat, "_ReadPieces"):  # each read's pieces joined, as the provider hands them over

        def joined(reads: list[bytes]) -> int:
            pieces_of, count = openai_chat._ReadPieces(ChunkReader(redact), EventStreamDecoder(), 10**9), 0
            for read in reads:
                pieces, failure = pieces_of.of(read)
                if failure is not None:
                    raise failure
                count += len(pieces)
                if pieces_of.done:
                    break
            return count

        return joined

    def after(reads: list[bytes]) -> int:
        decoder, reader, count = EventStreamDecoder(), ChunkReader(redact), 0
        for read in reads:
            for kind, data in decoder.feed(read):
                if kind == ERROR:
                    raise reader.error_event(data)
                if data == b"[DONE]":
                    return count + len(reader.close())
                count += len(reader.read(data))
        return count

    return after


def cpu_per_chunk(parse: Parse, reads: list[bytes], chunks: int, repeats: int) -> float:
    """Best of `repeats`, in µs of CPU per chunk."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        parse(reads)
        best = min(best, time.process_time() - start)
    return best / chunks * 1e6


def main() -> None:
    parser_args = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser_args.add_argument("--root", type=Path, default=ROOT, help="the checkout whose parser to measure")
    parser_args.add_argument("--chunks", type=int, default=10_000)
    parser_args.add_argument("--repeats", type=int, default=7)
    args = parser_args.parse_args()
    parse = parser(args.root.resolve())
    print(f"| dialect | per read µs/chunk | batched µs/chunk |  ({args.root})")
    print("|---|---:|---:|")
    for name, reads in streams(args.chunks).items():
        alone = cpu_per_chunk(parse, reads, args.chunks, args.repeats)
        together = cpu_per_chunk(parse, batched(reads), args.chunks, args.repeats)
        print(f"| {name} | {alone:.2f} | {together:.2f} |")


if __name__ == "__main__":
    main()
