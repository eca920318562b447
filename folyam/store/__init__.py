"""The conversation store: conversations and their exchanges, owned by a browser session, kept across
restarts and shared by every process. An exchange is written when it starts and when it ends (one
transaction each), never per token; between the two, a running answer lives in its process and in the
event log.

`ConversationStore` is the interface; `folyam.store.sql.SqlStore` implements it on SQLite or PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from folyam.providers import ChatMessage

__all__ = [
    "ConversationStore",
    "ConversationSummary",
    "ExchangeRecord",
    "ExchangeStatus",
    "NotYours",
    "StoreUnavailable",
]

ExchangeStatus = Literal["running", "finished", "stopped", "failed", "interrupted"]


class NotYours(Exception):
    """Raised when a session asks in a conversation that belongs to another session."""


class StoreUnavailable(Exception):
    """Raised when the database cannot be reached or answers with an error."""


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

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    id: str
    title: str
    updated_at: datetime


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
        history: int = 0,
    ) -> tuple[ExchangeRecord, bool, list[ChatMessage]]:
        """Record a new running exchange, creating the conversation if it is new. Returns (exchange,
        created, the conversation's last `history` ended exchanges as messages, in the same transaction):
        the same request id again returns the exchange it made, with False. Raises NotYours when the
        conversation is another session's."""

    async def finish_exchange(
        self,
        exchange_id: str,
        *,
        answer: str,
        status: ExchangeStatus,
        notice: tuple[str, str] | None,
        timing: dict[str, Any] | None,
        only_if_running: bool = False,
    ) -> bool:
        """Record how an exchange ended, in one transaction. With `only_if_running`, an exchange that has
        already ended is left alone (returns False)."""

    async def exchange(self, session_id: str, exchange_id: str) -> ExchangeRecord | None: ...

    async def exchanges(self, session_id: str, conversation_id: str) -> list[ExchangeRecord] | None:
        """The conversation's exchanges in order, or None when it is not this session's (or missing)."""

    async def history(self, conversation_id: str, limit: int) -> list[ChatMessage]:
        """The last `limit` ended exchanges as messages, for a follow-up question's context."""

    async def conversations(self, session_id: str, limit: int) -> list[ConversationSummary]:
        """The session's conversations, newest first."""

    async def rename(self, session_id: str, conversation_id: str, title: str) -> bool: ...

    async def delete(self, session_id: str, conversation_id: str) -> bool: ...

    async def running_exchanges(self) -> list[ExchangeRecord]:
        """Every exchange recorded as running (to find those whose process died)."""

    async def aclose(self) -> None: ...
