"""What a page shows of an exchange: the question, and the answer as it stands, whether it runs in this
process (body and live tail so far, resuming after the last event), in another (an empty shell that
replays the events), or has ended (rendered from the store)."""

from __future__ import annotations

from collections.abc import Callable

from markupsafe import Markup

from folyam.components import Answer, Exchange, UserMessage
from folyam.components._thinking import Thinking
from folyam.fragments import Endings, thinking_of
from folyam.generations import Generations
from folyam.store import ExchangeRecord

__all__ = ["ExchangeViews"]


class ExchangeViews:
    def __init__(self, endings: Endings, generations: Generations, render_markdown: Callable[[str], Markup]) -> None:
        self._endings = endings
        self._generations = generations
        self._render_markdown = render_markdown

    def exchange(self, record: ExchangeRecord) -> Exchange:
        edit_url = f"/chat/{record.conversation_id}/exchanges/{record.id}/edit"
        return Exchange(message=UserMessage(text=record.question, edit_url=edit_url), answer=self.answer(record))

    def answer(self, record: ExchangeRecord) -> Answer:
        local = self._generations.local(record.id)
        if local is not None and local.running:
            return local.answer()
        if record.running:
            events = f"/generations/{record.id}/events"
            return Answer(generation_id=record.id, events_url=events)
        return Answer(
            generation_id=record.id,
            events_url=None,
            body=self.body(record),
            status=self.status(record),
            thinking=self.thinking(record),
            refused=record.refused,
        )

    def thinking(self, record: ExchangeRecord) -> Thinking | None:
        return thinking_of(record, self._render_markdown)

    def body(self, record: ExchangeRecord) -> Markup:
        return self._render_markdown(record.answer)

    def status(self, record: ExchangeRecord) -> Markup:
        return self._endings.status(self._endings.of_record(record))
