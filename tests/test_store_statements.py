"""Each answer's statements, run on SQLite straight on the DB-API cursor (`folyam.store._statements`),
write exactly the rows SQLAlchemy's own execution writes, read the same, and fail as it fails."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, create_engine, event, insert
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from folyam.store import sql
from folyam.store._statements import SqlAlchemyStatements, SqliteStatements, Statements
from folyam.store.sql import SqlStore

CONVERSATIONS: list[dict[str, Any]] = [
    {"id": "c1", "session_id": "s1", "title": "Első kérdés 🙂", "created_at": datetime(2026, 12, 4, 3, 1, 2, 345678),
     "updated_at": datetime(2026, 12, 4, 3, 1, 2), "model": "m", "system_prompt": None},
    {"id": "c2", "session_id": "s2", "title": "x" * 200, "created_at": datetime(2026, 1, 1),
     "updated_at": datetime(2026, 1, 1, 0, 0, 0, 1), "model": "model/with:odd chars", "system_prompt": "Be brief.\n"},
]  # fmt: skip
EXCHANGES: list[dict[str, Any]] = [
    {"id": f"e{n}", "conversation_id": conversation, "session_id": session, "request_id": f"r{n}",
     "question": question, "answer": "", "status": "running", "model": "m", "created_at": datetime(2026, 12, 4, 3, n)}
    for n, (conversation, session, question) in enumerate(
        [("c1", "s1", "Mi a főváros?"), ("c1", "s1", "'; DROP TABLE exchanges; --"), ("c2", "s2", "\x00 nul")]
    )
]  # fmt: skip
FINISHES: list[tuple[Any, dict[str, Any]]] = [
    (sql._FINISH, {"exchange_id": "e0", "answer": "**Budapest**", "status": "done", "notice_title": None,
                   "notice_message": None, "timing": {"first_token_ms": 312.5, "tokens": 200, "nested": [1, None]},
                   "reasoning": "thinking…", "refused": None, "finished_at": datetime(2026, 12, 4, 3, 5, 0, 999999)}),
    (sql._FINISH, {"exchange_id": "e1", "answer": "", "status": "error", "notice_title": "Upstream",
                   "notice_message": "It broke.", "timing": None, "reasoning": None, "refused": True,
                   "finished_at": datetime(2026, 12, 4, 3, 6)}),
    # Only while running: e0 is not any more, e2 still is.
    (sql._FINISH_IF_RUNNING, {"exchange_id": "e0", "answer": "again", "status": "stopped", "notice_title": None,
                              "notice_message": None, "timing": {}, "reasoning": None, "refused": False,
                              "finished_at": datetime(2026, 12, 4, 3, 7)}),
    (sql._FINISH_IF_RUNNING, {"exchange_id": "e2", "answer": "ok", "status": "stopped", "notice_title": None,
                              "notice_message": None, "timing": {}, "reasoning": None, "refused": False,
                              "finished_at": datetime(2026, 12, 4, 3, 8)}),
]  # fmt: skip


@pytest.fixture
async def databases(tmp_path: Path) -> Iterator[list[tuple[Engine, Path]]]:
    """Two migrated SQLite files, each with an engine of its own that begins as the store's do."""
    made = []
    for name in ("sqlalchemy", "cursor"):
        path = tmp_path / f"{name}.db"
        store = SqlStore(f"sqlite:///{path}")
        await store.migrate()
        await store.aclose()
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
        event.listen(engine, "connect", sql._sqlite_loop_pragmas)
        event.listen(engine, "begin", sql._sqlite_begin)
        made.append((engine, path))
    yield made
    for engine, _ in made:
        engine.dispose()


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as connection:
        return {
            table: connection.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in ("conversations", "exchanges")
        }


def test_the_rows_written_and_read_are_sqlalchemy_s(databases: list[tuple[Engine, Path]]) -> None:
    results = []
    for (engine, path), statements in zip(
        databases, [SqlAlchemyStatements(), SqliteStatements(databases[1][0].dialect)], strict=True
    ):
        counts, found = [], []
        with engine.connect() as connection, connection.begin():
            for values in CONVERSATIONS:
                counts.append(statements.rowcount(connection, sql._INSERT_CONVERSATION, values))
            for values in EXCHANGES:
                counts.append(statements.rowcount(connection, sql._INSERT_EXCHANGE, values))
            found.append(statements.first(connection, sql._RUNNING_IN, {"conversation_id": "c2"}))
            for statement, values in FINISHES:
                counts.append(statements.rowcount(connection, statement, values))
            touch = {
                "conversation_id": "c1",
                "updated_at": datetime(2026, 12, 4, 4),
                "model": "n",
                "system_prompt": "Hi",
            }
            counts.append(statements.rowcount(connection, sql._TOUCH_CONVERSATION, touch))
            for conversation_id in ("c1", "c2", "c3"):
                found.append(statements.first(connection, sql._LOCK_CONVERSATION, {"conversation_id": conversation_id}))
                found.append(statements.first(connection, sql._RUNNING_IN, {"conversation_id": conversation_id}))
        results.append((counts, found, rows(path)))
    assert results[0] == results[1]
    counts, found, written = results[1]
    assert counts == [1, 1, 1, 1, 1, 1, 1, 0, 1, 1]
    # c2's running exchange before the finishes; then each conversation's owner and title, and none running.
    assert found == [("e2",), ("s1", "Első kérdés 🙂"), None, ("s2", "x" * 200), None, None, None]
    # As SQLAlchemy stores them: times as text with microseconds, the timing as JSON, the flag as 0/1.
    e0 = written["exchanges"][0]
    assert "2026-12-04 03:05:00.999999" in e0 and '{"first_token_ms": 312.5, "tokens": 200, "nested": [1, null]}' in e0
    assert written["exchanges"][1][-3:] == ("2026-12-04 03:06:00.000000", None, 1)  # finished, reasoning, refused


@pytest.mark.parametrize("kind", ["sqlalchemy", "cursor"])
def test_failures_are_raised_as_sqlalchemy_raises_them(databases: list[tuple[Engine, Path]], kind: str) -> None:
    engine, path = databases[0]
    statements: Statements = SqlAlchemyStatements() if kind == "sqlalchemy" else SqliteStatements(engine.dialect)
    with engine.connect() as connection:
        with connection.begin():
            statements.rowcount(connection, sql._INSERT_CONVERSATION, CONVERSATIONS[0])
        # The same id again: a race another process won, as the store's retry expects it.
        with pytest.raises(IntegrityError), connection.begin():
            statements.rowcount(connection, sql._INSERT_CONVERSATION, CONVERSATIONS[0])
        # Another connection holds the write lock: a lock held, which the store waits for in a thread.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            connection.execution_options(sqlite_begin="BEGIN")  # (a read, which then writes)
            with pytest.raises(OperationalError) as raised, connection.begin():
                statements.rowcount(connection, sql._INSERT_CONVERSATION, CONVERSATIONS[1])
            assert sql._lock_held(raised.value)
        finally:
            other.execute("ROLLBACK")
            other.close()
    assert [row[0] for row in rows(path)["conversations"]] == ["c1"]
    # A parameter a statement needs and was not given is refused, not sent as NULL.
    with engine.connect() as connection, pytest.raises(SQLAlchemyError, match="required"), connection.begin():
        statements.rowcount(connection, sql._FINISH, {"answer": "no id"})


@pytest.mark.parametrize("kind", ["sqlalchemy", "cursor"])
def test_a_value_its_column_cannot_take_is_sqlalchemy_s_error(databases: list[tuple[Engine, Path]], kind: str) -> None:
    # (Which the store reports as StoreUnavailable, like any other of SQLAlchemy's errors.)
    engine, path = databases[0]
    statements: Statements = SqlAlchemyStatements() if kind == "sqlalchemy" else SqliteStatements(engine.dialect)
    with engine.connect() as connection, pytest.raises(SQLAlchemyError), connection.begin():
        statements.rowcount(connection, sql._INSERT_CONVERSATION, {**CONVERSATIONS[0], "created_at": "yesterday"})
    assert rows(path)["conversations"] == []


def test_a_statement_that_needs_sqlalchemy_s_execution_is_refused(databases: list[tuple[Engine, Path]]) -> None:
    # A column's Python-side default is filled in by SQLAlchemy's execution, which the cursor way skips:
    # such a statement is refused rather than written without it.
    table = Table("with_default", MetaData(), Column("id", Integer, primary_key=True), Column("n", Integer, default=7))
    engine, _ = databases[0]
    with engine.connect() as connection, pytest.raises(ValueError, match="SQLAlchemy's execution"):
        SqliteStatements(engine.dialect).rowcount(connection, insert(table), {"id": 1})
