"""What an ended answer shows under it: a notice when it did not end normally, its timing, and the
actions on it (copy its markdown, regenerate or retry)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from folyam.components._error import ErrorNotice
from folyam.components._timing import Timing


@dataclass(frozen=True)
class AnswerActions:
    template: ClassVar[str] = "folyam/answer_actions.html"
    # Posting here asks the question again in place of this answer (and drops the exchanges after it).
    regenerate_url: str
    csrf_token: str
    # The answer's markdown source, for the Copy button.
    source: str
    # It ended in an error: the button says Retry.
    retry: bool = False


@dataclass(frozen=True)
class AnswerStatus:
    template: ClassVar[str] = "folyam/answer_status.html"
    notice: ErrorNotice | None
    timing: Timing | None
    actions: AnswerActions | None


@dataclass(frozen=True)
class Announcement:
    """A short sentence for screen readers, put into the page's one live region."""

    template: ClassVar[str] = "folyam/announcement.html"
    text: str
