"""The one notice fragment: a short title and a plain sentence, never a traceback. An error is an alert;
a warning says an answer ended but is not whole (cut off by a limit or a filter); a note (an answer the
person stopped) is a neutral remark."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

NoticeTone = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class ErrorNotice:
    """A notice shown to the person: an error, a warning or a note; never a traceback."""

    template: ClassVar[str] = "folyam/error.html"
    title: str
    message: str
    tone: NoticeTone = "error"
