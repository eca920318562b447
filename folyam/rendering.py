"""Turning model text into safe HTML, piece by piece."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from markupsafe import Markup, escape

__all__ = ["AnswerRenderer", "PlainTextRenderer", "RenderUpdate"]


@dataclass(frozen=True, slots=True)
class RenderUpdate:
    # HTML that is final: appended once to the answer body.
    append: Markup
    # The live tail's HTML, replacing the previous tail; None when it did not change.
    tail: Markup | None = None


class AnswerRenderer(Protocol):
    def feed(self, text: str) -> RenderUpdate: ...

    def finish(self) -> RenderUpdate: ...


class PlainTextRenderer:
    """Escaped text with its line breaks (the page shows them with `white-space: pre-wrap`).

    CRLF and lone CR become LF, so the streamed text equals the reloaded one; a CR at the end of a
    piece is held back until we know whether an LF follows."""

    def __init__(self) -> None:
        self._held_cr = False

    def feed(self, text: str) -> RenderUpdate:
        if self._held_cr:
            text = "\r" + text
            self._held_cr = False
        if text.endswith("\r"):
            text = text[:-1]
            self._held_cr = True
        return RenderUpdate(escape(_normalize_newlines(text)))

    def finish(self) -> RenderUpdate:
        held = "\n" if self._held_cr else ""
        self._held_cr = False
        return RenderUpdate(Markup(held))


def _normalize_newlines(text: str) -> str:
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")
