"""Folyam's reusable fragments. Each is a frozen dataclass naming its template under
`templates/components/`; `render_component(env, obj)` renders any of them, and pages call
`component(obj)` (a global of `make_environment()`), so a fragment is identical streamed or reloaded."""

from __future__ import annotations

from components._render import TEMPLATES_DIR, make_environment, render_component
from components.answer import Answer
from components.code_block import CodeBlock
from components.composer import Composer
from components.error import ErrorNotice
from components.exchange import Exchange
from components.formula import Formula
from components.message import UserMessage
from components.partial import Partial, SwapStyle
from components.timing import Timing

__all__ = [
    "TEMPLATES_DIR",
    "Answer",
    "CodeBlock",
    "Composer",
    "ErrorNotice",
    "Exchange",
    "Formula",
    "Partial",
    "SwapStyle",
    "Timing",
    "UserMessage",
    "make_environment",
    "render_component",
]
