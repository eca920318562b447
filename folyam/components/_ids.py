"""Element ids, spelled once: components pass them to their templates, and partials aim at the same
values, so a template and the code that targets it cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class AnswerIds:
    """The ids of one answer's elements, made once from its generation id."""

    answer: str
    # The thinking block's place above the answer (filled when thinking starts), and its summary line.
    thinking_slot: str
    thinking_summary: str
    reasoning_body: str
    reasoning_tail: str
    body: str
    tail: str
    status: str

    @classmethod
    def of(cls, generation_id: str) -> AnswerIds:
        """The ids of the answer that generation `generation_id` writes."""
        answer = f"answer-{generation_id}"
        return cls(
            answer=answer,
            thinking_slot=f"{answer}-thinking",
            thinking_summary=f"{answer}-thinking-summary",
            reasoning_body=f"{answer}-reasoning-body",
            reasoning_tail=f"{answer}-reasoning-tail",
            body=f"{answer}-body",
            tail=f"{answer}-tail",
            status=f"{answer}-status",
        )


@dataclass(frozen=True, slots=True)
class PageIds:
    """The ids of the chat page's own parts, one of each on a page, that partials aim at or a link or
    static/folyam.js finds."""

    thread: str = "thread"
    # The page's one live region (short spoken announcements).
    announcer: str = "announcer"
    composer: str = "composer"
    composer_query: str = "composer-query"
    composer_error: str = "composer-error"
    composer_action: str = "composer-action"
    composer_request_id: str = "composer-request-id"
    conversation_list: str = "conversation-list"
    export_link: str = "export-link"
    theme_switch: str = "theme-switch"

    @staticmethod
    def conversation(conversation_id: str) -> str:
        """A conversation's entry in the list."""
        return f"conversation-{conversation_id}"


PAGE_IDS: Final = PageIds()
