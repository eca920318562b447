"""One question and its answer, as the thread shows them (streamed or reloaded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jinja2
from markupsafe import Markup

from components._render import render_component
from components.answer import Answer
from components.message import UserMessage


@dataclass(frozen=True)
class Exchange:
    template: ClassVar[str] = "components/exchange.html"
    message: UserMessage
    answer: Answer


def render(env: jinja2.Environment, exchange: Exchange) -> Markup:
    return render_component(env, exchange)
