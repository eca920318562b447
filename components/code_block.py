"""A fenced code block: the language, a copy button, and the (highlighted) code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jinja2
from markupsafe import Markup

from components._render import render_component


@dataclass(frozen=True)
class CodeBlock:
    template: ClassVar[str] = "components/code_block.html"
    # The fence's info word, shown as text; "" when the fence named none.
    language: str
    # Pygments spans for a finished block, escaped plain text while the block is still streaming.
    code: Markup


def render(env: jinja2.Environment, block: CodeBlock) -> Markup:
    return render_component(env, block)
