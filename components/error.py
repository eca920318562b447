"""The one notice fragment: a short title and a plain sentence, never a traceback. An error is an alert;
a warning says an answer ended but is not whole (cut off by a limit or a filter); a note (an answer the
person stopped) is a neutral remark."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import jinja2
from markupsafe import Markup

from components._render import render_component

NoticeTone = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class ErrorNotice:
    template: ClassVar[str] = "components/error.html"
    title: str
    message: str
    tone: NoticeTone = "error"


def render(env: jinja2.Environment, notice: ErrorNotice) -> Markup:
    return render_component(env, notice)
