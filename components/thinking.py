"""The model's thinking, apart from its answer: a collapsible block above it, open while the model thinks
and closed once the answer starts. Its body and live tail take the same updates as the answer's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from markupsafe import Markup


@dataclass(frozen=True)
class ThinkingSummary:
    """The block's summary line: "Thinking…", then how long it took. Swapped alone (outerHTML) when the
    answer starts, since the block's content keeps its own updates."""

    template: ClassVar[str] = "components/thinking_summary.html"
    generation_id: str
    # None while the model thinks.
    seconds: float | None = None
    # Sent as the answer starts: static/folyam.js closes the block once (a swap cannot drop `open`).
    closes: bool = False


@dataclass(frozen=True)
class Thinking:
    template: ClassVar[str] = "components/thinking.html"
    generation_id: str
    body: Markup = field(default_factory=Markup)
    tail: Markup = field(default_factory=Markup)
    seconds: float | None = None
    # Open while the model thinks, and when thinking is all it sent.
    open: bool = True


@dataclass(frozen=True)
class RefusalLabel:
    """Put before the answer's body when the model refuses: the body that follows is styled as a refusal."""

    template: ClassVar[str] = "components/refusal_label.html"


# The templates build the same ids; the generation aims its partials with these.
def thinking_slot_id(generation_id: str) -> str:
    return f"answer-{generation_id}-thinking"


def thinking_summary_id(generation_id: str) -> str:
    return f"answer-{generation_id}-thinking-summary"


def reasoning_body_id(generation_id: str) -> str:
    return f"answer-{generation_id}-reasoning-body"


def reasoning_tail_id(generation_id: str) -> str:
    return f"answer-{generation_id}-reasoning-tail"
