"""The recorded stream shapes under `tests/corpus/streams/`: each `<name>.sse` holds the body bytes a
server sent, and `<name>.toml` beside it names the source, the HTTP status and content type, and what
the provider must make of it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from tests.support.fake_upstream import Script

STREAMS = Path(__file__).parent.parent / "corpus" / "streams"


@dataclass(frozen=True)
class Expected:
    text: str = ""
    reasoning: str = ""
    refusal: str = ""
    finish: str | None = None
    usage: tuple[int, int, int] | None = None
    # The ProviderError subclass's name, and words its message must contain.
    error: str | None = None
    message: str = ""


@dataclass(frozen=True)
class Shape:
    name: str
    body: bytes
    source: str
    note: str
    status: int
    content_type: str
    expect: Expected

    def script(self, write_size: int | None = None) -> Script:
        return Script(raw=self.body, raw_status=self.status, content_type=self.content_type, write_size=write_size)


def shapes() -> list[Shape]:
    found = []
    for body in sorted(STREAMS.glob("*.sse")):
        meta = tomllib.loads(body.with_suffix(".toml").read_text(encoding="utf-8"))
        expect = dict(meta.get("expect", {}))
        if "usage" in expect:
            expect["usage"] = tuple(expect["usage"])
        found.append(
            Shape(
                name=body.stem,
                body=body.read_bytes(),
                source=meta["source"],
                note=meta.get("note", ""),
                status=meta.get("status", 200),
                content_type=meta.get("content_type", "text/event-stream"),
                expect=Expected(**expect),
            )
        )
    return found
