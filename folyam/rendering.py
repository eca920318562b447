"""What an answer renderer gives back, and the newline handling every renderer shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from markupsafe import Markup

__all__ = ["AnswerRenderer", "NewlineNormalizer", "RenderUpdate", "TailChange", "TailSwap"]

TailSwap = Literal["innerHTML", "outerHTML", "beforeend"]


@dataclass(frozen=True, slots=True)
class TailChange:
    """One swap inside the live tail, small whatever the size of the open block."""

    # A CSS selector relative to the tail element ("" is the tail itself), e.g. " > ul:last-child > :last-child".
    path: str
    swap: TailSwap
    html: Markup

    @property
    def replaces_tail(self) -> bool:
        return self.path == "" and self.swap == "innerHTML"


@dataclass(frozen=True, slots=True)
class RenderUpdate:
    # Final HTML, appended once to the answer body.
    append: Markup = field(default_factory=Markup)
    # Changes to the live tail, applied in order; a replacement of the whole tail is always the first.
    tail: tuple[TailChange, ...] = ()
    # The whole body's HTML when finished blocks had to be rendered again; None almost always.
    replace: Markup | None = None

    @property
    def replaces_tail(self) -> bool:
        return any(change.replaces_tail for change in self.tail)

    def __bool__(self) -> bool:
        return bool(self.append) or bool(self.tail) or self.replace is not None


class AnswerRenderer(Protocol):
    def feed(self, text: str) -> RenderUpdate: ...

    def finish(self) -> RenderUpdate: ...

    def tail_html(self) -> Markup:
        """The live tail as the updates so far leave it (a page reloaded mid-answer shows this)."""
        ...


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
