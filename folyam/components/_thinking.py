"""The model's thinking, apart from its answer: a collapsible block above it, open while the model thinks
and closed once the answer starts. Its body and live tail take the same updates as the answer's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from markupsafe import Markup

from folyam.components._ids import AnswerIds


@dataclass(frozen=True)
class ThinkingSummary:
    """The block's summary line: "Thinking…", then how long it took. Swapped alone (outerHTML) when the
    answer starts, since the block's content keeps its own updates."""

    template: ClassVar[str] = "folyam/thinking_summary.html"
    generation_id: str
    # None while the model thinks.
    seconds: float | None = None
    # Sent as the answer starts: static/folyam.js closes the block once (a swap cannot drop `open`).
    closes: bool = False
    ids: AnswerIds = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", AnswerIds.of(self.generation_id))


@dataclass(frozen=True)
class Thinking:
    """The model's thinking, in a collapsible block above its answer."""

    template: ClassVar[str] = "folyam/thinking.html"
    generation_id: str
    body: Markup = field(default_factory=Markup)
    tail: Markup = field(default_factory=Markup)
    seconds: float | None = None
    # Open while the model thinks, and when thinking is all it sent.
    open: bool = True
    ids: AnswerIds = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", AnswerIds.of(self.generation_id))


@dataclass(frozen=True)
class RefusalLabel:
    """Put before the answer's body when the model refuses: the body that follows is styled as a refusal."""

    template: ClassVar[str] = "folyam/refusal_label.html"
