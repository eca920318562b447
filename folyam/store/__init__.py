"""The conversation store: conversations and their exchanges, owned by a browser session, kept across
restarts and shared by every process. An exchange is written when it starts and when it ends (one
transaction each), never per token; between the two, a running answer lives in its process and in the
event log.

`ConversationStore` is the interface; `folyam.store.sql.SqlStore` implements it on SQLite or PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from folyam.providers import ChatMessage

__all__ = [
    "ConversationBusy",
    "ConversationRecord",
    "ConversationStore",
    "ConversationSummary",
    "ExchangeRecord",
    "ExchangeStatus",
    "ListPosition",
    "NotYours",
    "StartedExchange",
    "StoreUnavailable",
    "UnknownExchange",
]

ExchangeStatus = Literal["running", "finished", "stopped", "failed", "interrupted"]


class NotYours(Exception):
    """Raised when a session asks in a conversation that belongs to another session."""


class StoreUnavailable(Exception):
    """Raised when the database cannot be reached or answers with an error."""


class ConversationBusy(Exception):
    """Raised when a question (or a truncation) reaches a conversation whose answer is still running: a
    conversation answers one question at a time."""

    def __init__(self, conversation_id: str, exchange_id: str) -> None:
        super().__init__(
            f"conversation {conversation_id!r} is still answering (exchange {exchange_id!r}); "
            "ask again once it has ended or been stopped"
        )
        self.conversation_id = conversation_id
        # The running exchange: the one to wait for, or to stop.
        self.exchange_id = exchange_id


class UnknownExchange(LookupError):
    """Raised when the exchange a new question should replace is not one of the conversation's."""

    def __init__(self, conversation_id: str, exchange_id: str) -> None:
        super().__init__(f"no exchange {exchange_id!r} in conversation {conversation_id!r}")
        self.conversation_id = conversation_id
        self.exchange_id = exchange_id


@dataclass(frozen=True, slots=True)
class ExchangeRecord:
    id: str  # the generation's id
    conversation_id: str
    session_id: str
    request_id: str
    question: str
    answer: str  # the answer's markdown source (so far, while running)
    status: ExchangeStatus
    model: str
    created_at: datetime
    finished_at: datetime | None = None
    notice_title: str | None = None
    notice_message: str | None = None
    # Timing and usage as the timing component takes them (None while running, or if it never began).
    timing: dict[str, Any] | None = None
    # The model's thinking (None when it sent none, and for answers stored before it was kept).
    reasoning: str | None = None
    # The answer is the model's refusal.
    refused: bool = False

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    id: str
    title: str
    updated_at: datetime

    @property
    def position(self) -> ListPosition:
        return ListPosition(self.updated_at, self.id)


@dataclass(frozen=True, slots=True)
class ListPosition:
    """A place in the conversation list (newest first, then by id): a page of it begins after one."""

    updated_at: datetime
    conversation_id: str


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    id: str
    session_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    # What its latest question was asked with (each exchange keeps the model that answered it). The model
    # is None only for conversations older than this field; the system prompt is None when there is none.
    model: str | None
    system_prompt: str | None


@dataclass(frozen=True, slots=True)
class StartedExchange:
    exchange: ExchangeRecord
    # False when this request id had already started it (a re-sent form): nothing else was done.
    created: bool
    # The conversation's last ended exchanges as messages, for the question's context (when created).
    history: list[ChatMessage] = field(default_factory=list)
    # The exchanges deleted in its favour (regenerate / edit), in order.
    replaced: list[str] = field(default_factory=list)
    # The conversation's title (the question's, when this started the conversation).
    title: str = ""


class ConversationStore(Protocol):
    async def migrate(self) -> None:
        """Bring the schema up to date (run at start; safe to run from several processes at once)."""

    async def start_exchange(
        self,
        *,
        exchange_id: str,
        session_id: str,
        conversation_id: str,
        request_id: str,
        question: str,
        model: str,
        system_prompt: str | None = None,
        history: int = 0,
        replaces: str | None = None,
    ) -> StartedExchange:
        """Record a new running exchange, creating the conversation if it is new, in one transaction: the
        conversation takes `model` and `system_prompt` (blank: none) as its current ones; the result
        carries its last `history` ended exchanges as messages, and its title (the question's, when this
        made the conversation). With `replaces`, that exchange and every later one are deleted first
        (regenerate, edit), and the history is what came before them.

        The same request id again returns the exchange it made (created False), whatever else was asked.
        Raises NotYours when the conversation is another session's, ConversationBusy when it has an
        answer running, UnknownExchange when `replaces` is not one of its exchanges."""

    async def finish_exchange(
        self,
        exchange_id: str,
        *,
        answer: str,
        status: ExchangeStatus,
        notice: tuple[str, str] | None,
        timing: dict[str, Any] | None,
        only_if_running: bool = False,
        reasoning: str | None = None,
        refused: bool = False,
    ) -> bool:
        """Record how an exchange ended, in one transaction. With `only_if_running`, an exchange that has
        already ended is left alone (returns False). `reasoning` is the model's thinking (never history)."""

    async def truncate(self, session_id: str, conversation_id: str, exchange_id: str) -> list[str] | None:
        """Delete the exchange and every later one of the conversation, in one transaction; returns their
        ids in order, or None when the conversation or the exchange is not this session's. Raises
        ConversationBusy when the conversation has an answer running."""

    async def conversation(self, session_id: str, conversation_id: str) -> ConversationRecord | None:
        """The conversation, or None when it is not this session's (or missing)."""

    async def exchange(self, session_id: str, exchange_id: str) -> ExchangeRecord | None: ...

    async def exchanges(self, session_id: str, conversation_id: str) -> list[ExchangeRecord] | None:
        """The conversation's exchanges in order, or None when it is not this session's (or missing)."""

    async def history(self, conversation_id: str, limit: int) -> list[ChatMessage]:
        """The last `limit` ended exchanges as messages, for a follow-up question's context."""

    async def conversations(
        self, session_id: str, limit: int, *, older_than: ListPosition | None = None
    ) -> list[ConversationSummary]:
        """The session's conversations, newest first; with `older_than`, those after that place in the list."""

    async def rename(self, session_id: str, conversation_id: str, title: str) -> bool: ...

    async def delete(self, session_id: str, conversation_id: str) -> bool: ...

    async def running_exchanges(self) -> list[ExchangeRecord]:
        """Every exchange recorded as running (to find those whose process died)."""

    async def aclose(self) -> None: ...
