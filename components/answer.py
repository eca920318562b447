"""The answer shell: where a streamed answer lands, and how a finished one is shown again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import jinja2
from markupsafe import Markup

from components._render import render_component
from components.thinking import Thinking


@dataclass(frozen=True)
class Answer:
    template: ClassVar[str] = "components/answer.html"
    generation_id: str
    # The SSE URL while the answer is streaming; None for a finished answer (nothing to connect to).
    events_url: str | None
    body: Markup = field(default_factory=Markup)
    # The live tail as it stands (a page reloaded mid-answer).
    tail: Markup = field(default_factory=Markup)
    status: Markup | None = None
    # The model's thinking, shown apart above the answer; None when it sent none (yet).
    thinking: Thinking | None = None
    # The model refused: the body is its refusal, styled as one.
    refused: bool = False


# The template builds the same ids; the generation uses these to aim its partials.
def body_id(generation_id: str) -> str:
    return f"answer-{generation_id}-body"


def tail_id(generation_id: str) -> str:
    return f"answer-{generation_id}-tail"


def status_id(generation_id: str) -> str:
    return f"answer-{generation_id}-status"


def render(env: jinja2.Environment, answer: Answer) -> Markup:
    return render_component(env, answer)
