"""An exchange's thinking (reasoning) and whether its answer is a refusal.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: added in place on both databases; older answers had no thinking and no refusal.
    with op.batch_alter_table("exchanges") as batch:
        batch.add_column(sa.Column("reasoning", sa.Text(), nullable=True))
        batch.add_column(sa.Column("refused", sa.Boolean(), nullable=True))


def downgrade() -> None:
    # Never a copy of the table on SQLite (see 0002).
    with op.batch_alter_table("exchanges", recreate="never") as batch:
        batch.drop_column("refused")
        batch.drop_column("reasoning")
