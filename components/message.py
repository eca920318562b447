"""The person's question, shown as a bubble in the thread, with Edit when it can be asked again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jinja2
from markupsafe import Markup

from components._render import render_component


@dataclass(frozen=True)
class UserMessage:
    template: ClassVar[str] = "components/message.html"
    text: str
    # Where editing the question starts (a page without JavaScript, the form in place with htmx); None
    # while its answer streams.
    edit_url: str | None = None


@dataclass(frozen=True)
class EditForm:
    """Editing a question: posting it asks the new question in its place (later exchanges are dropped)."""

    template: ClassVar[str] = "components/edit_form.html"
    action_url: str
    cancel_url: str
    text: str
    csrf_token: str
    max_chars: int


def render(env: jinja2.Environment, message: UserMessage) -> Markup:
    return render_component(env, message)
