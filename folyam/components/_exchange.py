"""One question and its answer, as the thread shows them (streamed or reloaded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from folyam.components._answer import Answer
from folyam.components._message import UserMessage


@dataclass(frozen=True)
class Exchange:
    """A question and its answer."""

    template: ClassVar[str] = "folyam/exchange.html"
    message: UserMessage
    answer: Answer
