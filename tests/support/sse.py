"""Reading SSE the way a browser does, for assertions on whole transcripts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape

import httpx

from tests.support.dom import Document, Element, parse_fragment

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


def apply_partials(frames: list[Frame], initial: dict[str, str] | None = None) -> dict[str, str]:
    """Swap every <hx-partial> of every frame the way htmx does, starting from `initial` (an element id's
    HTML, e.g. a reloaded page's); returns each target's final HTML. Body and status are swapped as
    strings (so they compare with the renderer's output as is); the live tail, whose changes aim inside
    it, goes through a small DOM and comes back as that DOM serialises it."""
    targets = dict(initial or {})
    document = Document()
    for element_id, html in targets.items():
        if element_id.endswith("-tail"):
            document.swap(f"#{element_id}", "innerHTML", html)
    for frame in frames:
        for raw_target, swap, content in _PARTIAL.findall(frame.data):
            target = unescape(raw_target)
            element_id, _, path = target.partition(" ")
            if element_id.endswith("-tail"):
                document.swap(f"#{target}", swap, content)
            elif path:
                raise AssertionError(f"a swap inside #{element_id}: {target!r}")
            elif swap == "innerHTML":
                targets[element_id] = content
                _replace_tails(document, content)
            elif swap == "beforeend":
                targets[element_id] = targets.get(element_id, "") + content
            elif swap == "outerHTML":  # the composer's button: kept as the element it becomes
                targets[element_id] = content
            elif swap == "beforebegin":  # a refusal's label, before the body
                targets[f"{element_id}:before"] = targets.get(f"{element_id}:before", "") + content
            else:
                raise AssertionError(f"unexpected swap {swap!r} in {frame.data!r}")
    targets.update({element_id: element.inner_html() for element_id, element in document.by_id.items()})
    return targets


def _replace_tails(document: Document, html: str) -> None:
    """A swap whose content holds a live tail (a whole thinking block) replaces that tail element too."""
    nodes: list[Element | str] = list(parse_fragment(html))
    while nodes:
        node = nodes.pop()
        if isinstance(node, Element):
            element_id = dict(node.attrs).get("id") or ""
            if element_id.endswith("-tail"):
                document.by_id[element_id] = node
            nodes.extend(node.children)


def answer_html(frames: list[Frame], *, reasoning: bool = False) -> str:
    """The answer body's HTML (or the thinking block's, with `reasoning`) once every frame has been
    applied (the live tails must end empty)."""
    targets = apply_partials(frames)
    bodies = [
        html
        for target, html in targets.items()
        if target.endswith("-body") and target.endswith("-reasoning-body") == reasoning
    ]
    tails = [html for target, html in targets.items() if target.endswith("-tail")]
    assert len(bodies) <= 1 and all(tail == "" for tail in tails), targets
    return bodies[0] if bodies else ""
