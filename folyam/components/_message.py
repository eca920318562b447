"""The person's question, shown as a bubble in the thread, with Edit when it can be asked again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class UserMessage:
    """The person's question, as a bubble in the thread."""

    template: ClassVar[str] = "folyam/message.html"
    text: str
    # Where editing the question starts (a page without JavaScript, the form in place with htmx); None
    # while its answer streams.
    edit_url: str | None = None


@dataclass(frozen=True)
class EditForm:
    """Editing a question: posting it asks the new question in its place (later exchanges are dropped)."""

    template: ClassVar[str] = "folyam/edit_form.html"
    action_url: str
    cancel_url: str
    text: str
    csrf_token: str
    max_chars: int
