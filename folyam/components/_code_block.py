"""A fenced code block: the language, a copy button, and the (highlighted) code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from markupsafe import Markup


@dataclass(frozen=True)
class CodeBlock:
    """A fenced code block: its language, a copy button and the code."""

    template: ClassVar[str] = "folyam/code_block.html"
    # The fence's info word, shown as text; "" when the fence named none.
    language: str
    # Pygments spans for a finished block, escaped plain text while the block is still streaming.
    code: Markup
