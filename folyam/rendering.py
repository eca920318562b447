"""What an answer renderer gives back, and the newline handling every renderer shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from markupsafe import Markup

__all__ = ["AnswerRenderer", "NewlineNormalizer", "RenderUpdate", "TailAppend"]


@dataclass(frozen=True, slots=True)
class TailAppend:
    """Text that extends the live tail in place: appended to the element `path` leads to."""

    # A CSS selector relative to the tail element, e.g. " > ul:last-child > li:last-child".
    path: str
    html: Markup


@dataclass(frozen=True, slots=True)
class RenderUpdate:
    # Final HTML, appended once to the answer body.
    append: Markup
    # The live tail's whole new HTML; None when it did not change.
    tail: Markup | None = None
    # When set, the same change as a cheap in-place append (what goes over the wire).
    tail_append: TailAppend | None = None
    # The whole body's HTML when finished blocks had to be rendered again; None almost always.
    replace: Markup | None = None


class AnswerRenderer(Protocol):
    def feed(self, text: str) -> RenderUpdate: ...

    def finish(self) -> RenderUpdate: ...


class NewlineNormalizer:
    """CRLF and lone CR become LF, across piece boundaries: a CR at the end of a piece is held back
    until we know whether an LF follows."""

    def __init__(self) -> None:
        self._held_cr = False

    def feed(self, text: str) -> str:
        if self._held_cr:
            text = "\r" + text
            self._held_cr = False
        if text.endswith("\r"):
            text = text[:-1]
            self._held_cr = True
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text

    def finish(self) -> str:
        held, self._held_cr = self._held_cr, False
        return "\n" if held else ""
