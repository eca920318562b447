"""A conversation as a Markdown document: its title, then each question and the answer's own markdown,
with a note where an answer did not end normally. The model's thinking, if any, comes before its answer
as a quoted "Thinking" section, never inside the answer."""

from __future__ import annotations

from collections.abc import Sequence

from folyam.store import ExchangeRecord

__all__ = ["conversation_markdown"]


def _quoted(text: str) -> str:
    # The question as a block quote: whatever it contains stays inside it.
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines() or [""])


def conversation_markdown(title: str, exchanges: Sequence[ExchangeRecord]) -> str:
    parts = [f"# {' '.join(title.split())}\n"]
    for record in exchanges:
        parts.append(f"## Question\n\n{_quoted(record.question)}\n")
        if record.reasoning:
            parts.append(f"## Thinking\n\n{_quoted(record.reasoning.strip())}\n")
        parts.append(f"## Answer ({record.model})\n\n{record.answer.strip()}\n")
        if record.notice_title:
            parts.append(f"*{record.notice_title}: {record.notice_message or ''}*\n")
        elif record.running:
            parts.append("*Still being written when exported.*\n")
    return "\n".join(parts)
