"""A conversation's model and system prompt.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: added in place on both databases (SQLite needs no copy of the table).
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("model", sa.String(200), nullable=True))
        batch.add_column(sa.Column("system_prompt", sa.Text(), nullable=True))
    # A conversation begun before this asked with the model of its latest exchange.
    op.execute(
        "UPDATE conversations SET model = (SELECT e.model FROM exchanges e WHERE e.conversation_id = conversations.id "
        "ORDER BY e.created_at DESC, e.id DESC LIMIT 1)"
    )


def downgrade() -> None:
    # Never a copy of the table on SQLite: dropping the old one would cascade to every exchange.
    with op.batch_alter_table("conversations", recreate="never") as batch:
        batch.drop_column("system_prompt")
        batch.drop_column("model")
