"""Alembic's environment: migrations run on the connection `SqlStore.migrate()` hands over."""

from __future__ import annotations

from alembic import context

from folyam.store.tables import metadata

connection = context.config.attributes["connection"]
# Batch mode: SQLite can only alter a table by copying it.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
