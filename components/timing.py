"""The timing fragment that closes every answer: time to first token, duration, speed and usage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jinja2
from markupsafe import Markup

from components._render import render_component


@dataclass(frozen=True)
class Timing:
    template: ClassVar[str] = "components/timing.html"
    model: str
    # None when no token arrived.
    first_token_ms: float | None
    total_ms: float
    # Text deltas received from the upstream.
    chunks: int
    # Completion tokens: the upstream's count when it reported usage, else the number of chunks.
    tokens: int
    tokens_reported: bool
    tokens_per_second: float | None
    prompt_tokens: int | None = None
    total_tokens: int | None = None


def render(env: jinja2.Environment, timing: Timing) -> Markup:
    return render_component(env, timing)
