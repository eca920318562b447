"""The person's question, shown as a bubble in the thread."""

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


def render(env: jinja2.Environment, message: UserMessage) -> Markup:
    return render_component(env, message)
