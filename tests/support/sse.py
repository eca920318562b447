"""Reading SSE the way a browser does, for assertions on whole transcripts."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

_PARTIAL = re.compile(r'<hx-partial hx-target="#([^"]+)" hx-swap="([^"]+)">(.*?)</hx-partial>', re.S)


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


def read_some(client: httpx.Client, url: str, frames: int) -> list[Frame]:
    """Read a live stream until `frames` events arrived, then hang up."""
    buffer = ""
    with client.stream("GET", url) as response:
        for text in response.iter_text():
            buffer += text
            if buffer.count("\r\n\r\n") >= frames:
                break
    complete, _, _ = buffer.rpartition("\r\n\r\n")
    return [f for f in parse_frames(complete + "\r\n\r\n") if not f.comment]


def apply_partials(frames: list[Frame]) -> dict[str, str]:
    """Swap every <hx-partial> of every frame the way htmx does; returns each target's final HTML."""
    targets: dict[str, str] = {}
    for frame in frames:
        for target, swap, content in _PARTIAL.findall(frame.data):
            if swap == "innerHTML":
                targets[target] = content
            elif swap == "beforeend":
                targets[target] = targets.get(target, "") + content
            else:
                raise AssertionError(f"unexpected swap {swap!r} in {frame.data!r}")
    return targets


def answer_html(frames: list[Frame]) -> str:
    """The answer body's HTML once every frame has been applied (the live tail must end empty)."""
    targets = apply_partials(frames)
    bodies = [html for target, html in targets.items() if target.endswith("-body")]
    tails = [html for target, html in targets.items() if target.endswith("-tail")]
    assert len(bodies) <= 1 and all(tail == "" for tail in tails), targets
    return bodies[0] if bodies else ""
