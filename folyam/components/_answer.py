"""The answer shell: where a streamed answer lands, and how a finished one is shown again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from markupsafe import Markup

from folyam.components._ids import AnswerIds
from folyam.components._thinking import Thinking


@dataclass(frozen=True)
class Answer:
    """An answer: streaming into its body and live tail from `events_url`, or finished."""

    template: ClassVar[str] = "folyam/answer.html"
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
    ids: AnswerIds = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", AnswerIds.of(self.generation_id))
