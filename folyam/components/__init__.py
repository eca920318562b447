"""Folyam's components: the HTML fragments of a streamed model answer, for any htmx app.

Each is a frozen dataclass whose fields are its template's arguments. `render_component(env, obj)`
renders one, and a template calls `component(obj)` for the same HTML, so a fragment is identical streamed
or reloaded. `add_to_environment(env)` gives an existing Jinja environment the templates and that global;
`make_environment()` makes a new one.
"""

from __future__ import annotations

from folyam.components._answer import Answer
from folyam.components._code_block import CodeBlock
from folyam.components._error import ErrorNotice, NoticeTone
from folyam.components._exchange import Exchange
from folyam.components._formula import Formula
from folyam.components._ids import AnswerIds
from folyam.components._message import UserMessage
from folyam.components._partial import Partial, SwapStyle
from folyam.components._render import (
    IncompatibleEnvironment,
    add_to_environment,
    make_environment,
    render_component,
)
from folyam.components._thinking import Thinking
from folyam.components._timing import Timing

__all__ = [
    "Answer",
    "AnswerIds",
    "CodeBlock",
    "ErrorNotice",
    "Exchange",
    "Formula",
    "IncompatibleEnvironment",
    "NoticeTone",
    "Partial",
    "SwapStyle",
    "Thinking",
    "Timing",
    "UserMessage",
    "add_to_environment",
    "make_environment",
    "render_component",
]
