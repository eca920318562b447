"""An htmx 4 `<hx-partial>`: content that names its own target and swap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import jinja2
from markupsafe import Markup

from components._render import render_component

SwapStyle = Literal["innerHTML", "outerHTML", "beforeend", "afterbegin", "beforebegin", "afterend"]


@dataclass(frozen=True)
class Partial:
    template: ClassVar[str] = "components/partial.html"
    # A CSS selector, usually "#some-id".
    target: str
    swap: SwapStyle
    content: Markup


def render(env: jinja2.Environment, partial: Partial) -> Markup:
    return render_component(env, partial)
