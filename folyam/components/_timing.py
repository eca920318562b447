"""The timing fragment that closes every answer: time to first token, duration, speed and usage; for a
model that thinks first, its thinking apart from its answering."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Timing:
    """How long an answer took and what it used: first token, total, speed, tokens."""

    template: ClassVar[str] = "folyam/timing.html"
    model: str
    # Time to the answer's first token; None when no answer text arrived.
    first_token_ms: float | None
    total_ms: float
    # Text and thinking deltas received from the upstream.
    chunks: int
    # Completion tokens: the upstream's count when it reported usage, else the number of chunks.
    tokens: int
    tokens_reported: bool
    tokens_per_second: float | None
    prompt_tokens: int | None = None
    total_tokens: int | None = None
    # Thinking (None without any, and in rows stored before it was kept): time to its first token, and
    # how long thinking and answering took (thinking ends when the answer's first text arrives).
    first_reasoning_ms: float | None = None
    thinking_ms: float | None = None
    answering_ms: float | None = None
