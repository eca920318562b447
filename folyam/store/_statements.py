"""How the store runs the statements of every answer: SQLAlchemy's execution, or on SQLite straight on the
DB-API cursor.

On SQLite each such statement is compiled once by SQLAlchemy (its SQL, its parameters' order, its types'
bind processors for the dialect). What SQLAlchemy does around every execution (an execution context,
events, parameters processed in general, a result object) cost about three times the statement itself
for the small writes each answer makes: start and finish were three quarters SQLAlchemy. The rows written
are the same (a test holds them to SQLAlchemy's own execution), and a failure is raised as SQLAlchemy
raises it (an `IntegrityError` for a race, an `OperationalError` for a lock held)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError, StatementError
from sqlalchemy.sql import ClauseElement

__all__ = ["SqlAlchemyStatements", "SqliteStatements", "Statements", "execute_on_driver"]

Row = tuple[Any, ...]


class Statements(Protocol):
    def first(self, connection: Connection, statement: ClauseElement, params: Mapping[str, Any]) -> Row | None:
        """The first row of a query's result, or None. Its columns as stored, without SQLAlchemy's result
        processing: for text columns only (a time or JSON would come back as SQLite stores it)."""

    def rowcount(self, connection: Connection, statement: ClauseElement, params: Mapping[str, Any]) -> int:
        """Run a write; the rows it changed."""


class SqlAlchemyStatements:
    """Every dialect's way: `Connection.execute`."""

    def first(self, connection: Connection, statement: ClauseElement, params: Mapping[str, Any]) -> Row | None:
        row = connection.execute(statement, params).first()  # type: ignore[call-overload]
        return tuple(row) if row is not None else None

    def rowcount(self, connection: Connection, statement: ClauseElement, params: Mapping[str, Any]) -> int:
        return int(connection.execute(statement, params).rowcount)  # type: ignore[call-overload]


class SqliteStatements:
    """SQLite's way for the statements given to it (module-level constants: each is compiled once for
    every set of parameter names it is run with)."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._compiled: dict[tuple[int, tuple[str, ...]], _Compiled] = {}

    def first(self, connection: Connection, statement: ClauseElement, params: Mapping[str, Any]) -> Row | None:
        cursor = self._execute(connection, statement, params)
        try:
            row: Row | None = cursor.fetchone()
            return row
        finally:
            cursor.close()

    def rowcount(self, connection: Connection, statement: ClauseElement, params: Mapping[str, Any]) -> int:
        cursor = self._execute(connection, statement, params)
        cursor.close()
        return int(cursor.rowcount)

    def _execute(self, connection: Connection, statement: ClauseElement, params: Mapping[str, Any]) -> sqlite3.Cursor:
        # By the statement's id: each entry holds its statement, so the id stays that statement's.
        key = (id(statement), tuple(params))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = _Compiled(statement, self._dialect, key[1])
        try:
            values = compiled.values(params)
        except Exception as exc:  # a value its type cannot take: as SQLAlchemy reports it
            raise StatementError(str(exc), compiled.sql, dict(params), exc) from exc
        return execute_on_driver(connection, compiled.sql, values)


def execute_on_driver(connection: Connection, sql: str, values: Sequence[Any] = ()) -> sqlite3.Cursor:
    """`sql` straight on the connection's sqlite3 connection, a failure raised as SQLAlchemy wraps it (a
    lock held, for one, is an `OperationalError` with its SQLite error code)."""
    driver: sqlite3.Connection = connection.connection.driver_connection  # type: ignore[assignment]
    try:
        return driver.execute(sql, values)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, values, exc, sqlite3.Error, dialect=connection.dialect) from exc


_NOT_GIVEN = object()


class _Compiled:
    """A statement's SQL for one set of parameter names, with what each positional parameter takes: the
    named parameter through its type's bind processor, or the statement's own value (a literal in it)."""

    __slots__ = ("parameters", "sql", "statement")

    def __init__(self, statement: ClauseElement, dialect: Dialect, names: tuple[str, ...]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(names))
        if compiled.positiontup is None:  # type: ignore[attr-defined]
            raise ValueError("SqliteStatements needs a positional paramstyle")
        # What only SQLAlchemy's execution would do: a column's Python-side default or onupdate, or a
        # parameter rendered into the SQL at execution. Not for this way.
        if any(
            getattr(compiled, extra, None)
            for extra in ("insert_prefetch", "update_prefetch", "post_compile_params", "literal_execute_params")
        ):
            raise ValueError(f"SqliteStatements cannot run {compiled.string!r}: it needs SQLAlchemy's execution")
        self.statement = statement
        self.sql = compiled.string
        self.parameters: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in compiled.positiontup:  # type: ignore[attr-defined]
            bind = compiled.binds[name]  # type: ignore[attr-defined]
            if name not in names and bind.required:
                raise InvalidRequestError(f"A value is required for bind parameter {name!r}")
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.parameters.append((name, _NOT_GIVEN if name in names else bind.effective_value, processor))

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, own, processor in self.parameters:
            value = params[name] if own is _NOT_GIVEN else own
            values.append(value if processor is None else processor(value))
        return values
