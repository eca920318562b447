"""Reading SSE the way a browser does, for assertions on whole transcripts."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

_BODY_PARTIAL = re.compile(r'<hx-partial hx-target="#answer-[^"]+-body" hx-swap="beforeend">(.*)</hx-partial>', re.S)


@dataclass(frozen=True)
class Frame:
    id: str | None
    event: str | None
    data: str
    comment: bool = False


def parse_frames(raw: str) -> list[Frame]:
    """Split a stream into frames line by line, as the SSE spec says (CRLF, CR and LF end a line)."""
    frames: list[Frame] = []
    fields: dict[str, list[str]] = {}
    for line in re.split(r"\r\n|\r|\n", raw):
        if line:
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
            continue
        if set(fields) == {""}:
            frames.append(Frame(None, None, "", comment=True))
        elif fields:
            frames.append(
                Frame(
                    id=fields.get("id", [None])[-1],
                    event=fields.get("event", [None])[-1],
                    data="\n".join(fields.get("data", [])),
                )
            )
        fields = {}
    return frames


def read_events(client: httpx.Client, url: str, *, last_event_id: str | None = None) -> tuple[str, list[Frame]]:
    """Read an event stream to its end; returns the raw text and the frames (comments dropped)."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    with client.stream("GET", url, headers=headers) as response:
        response.raise_for_status()
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join(response.iter_text())
    return raw, [f for f in parse_frames(raw) if not f.comment]


def answer_text(frames: list[Frame]) -> str:
    """The concatenated content of every body partial, i.e. what the answer body shows."""
    parts = []
    for frame in frames:
        match = _BODY_PARTIAL.fullmatch(frame.data)
        if match:
            parts.append(match.group(1))
    return "".join(parts)
