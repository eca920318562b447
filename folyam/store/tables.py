"""The store's schema. Changing it means a new migration in `folyam/store/migrations/versions/`."""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["MODEL_CHARS", "conversations", "exchanges", "metadata"]

MODEL_CHARS: Final = 200

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Times are naive UTC (SQLite keeps no time zone).
conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("session_id", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("created_at", DateTime(), nullable=False),
    Column("updated_at", DateTime(), nullable=False),
    # What its latest question was asked with (0002).
    Column("model", String(MODEL_CHARS)),
    Column("system_prompt", Text()),
    Index(None, "session_id", "updated_at"),
)

exchanges = Table(
    "exchanges",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("question", Text(), nullable=False),
    Column("answer", Text(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("model", String(MODEL_CHARS), nullable=False),
    Column("notice_title", Text()),
    Column("notice_message", Text()),
    Column("timing", JSON()),
    # The model's thinking, shown apart and never sent back upstream; a refusal's flag (0003).
    Column("reasoning", Text()),
    Column("refused", Boolean()),
    Column("created_at", DateTime(), nullable=False),
    Column("finished_at", DateTime()),
    UniqueConstraint("session_id", "request_id"),
    Index(None, "conversation_id", "created_at"),
    Index(None, "status"),
)
