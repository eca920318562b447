"""The one error fragment: a short title and a plain sentence, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jinja2
from markupsafe import Markup

from components._render import render_component


@dataclass(frozen=True)
class ErrorNotice:
    template: ClassVar[str] = "components/error.html"
    title: str
    message: str


def render(env: jinja2.Environment, notice: ErrorNotice) -> Markup:
    return render_component(env, notice)
