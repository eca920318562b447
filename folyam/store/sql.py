"""The conversation store on SQLAlchemy 2: SQLite by default, PostgreSQL through asyncpg to scale out.
Migrations (Alembic) run at start. Every operation has a time limit: an unreachable database is a clear
error, never a hang.

Each operation is one transaction written as a plain function of a `Connection`. On PostgreSQL it runs
on the async engine's connection (`run_sync`), each statement awaiting asyncpg. On SQLite, the small
transactions of every answer (start, finish, look-ups by key, the list) run right on the event loop on a
connection that never waits for a lock: they take a fraction of a millisecond, less than a hop to a thread
costs, and under load those hops (the GIL passed back and forth) delayed every answer's first event by
hundreds of milliseconds. When another process holds the write lock, such a transaction runs instead, as
every other one does, in a thread of the store's own, which may wait for it up to the time limit."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import alembic.command
import alembic.config
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Row,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from folyam.providers import ChatMessage
from folyam.store import (
    ConversationBusy,
    ConversationRecord,
    ConversationSummary,
    ExchangeRecord,
    ExchangeStatus,
    ListPosition,
    NotYours,
    StartedExchange,
    StoreUnavailable,
    UnknownExchange,
)
from folyam.store._statements import SqlAlchemyStatements, SqliteStatements, Statements, execute_on_driver
from folyam.store.tables import MODEL_CHARS, conversations, exchanges, metadata

__all__ = ["SqlStore", "database_url_with_driver"]

MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"
TITLE_CHARS: Final = 80
_MIGRATION_LOCK: Final = 7_263_001  # a PostgreSQL advisory lock: one process migrates at a time
T = TypeVar("T")
logger = logging.getLogger(__name__)


def database_url_with_driver(url: str) -> str:
    """`sqlite:///path.db` or `postgresql://…` with the driver the app uses for it."""
    parsed = make_url(url)
    drivers = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
    backend = parsed.get_backend_name()
    if backend not in drivers:
        raise ValueError(f"FOLYAM_DATABASE_URL must be sqlite:///… or postgresql://…, not {parsed.drivername}://")
    return parsed.set(drivername=drivers[backend]).render_as_string(hide_password=False)


def _storable(text: str) -> str:
    # PostgreSQL's text holds no NUL; markdown-it shows it as U+FFFD anyway, so the page is unchanged.
    return text.replace("\x00", "\ufffd")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def title_of(question: str) -> str:
    """A conversation is titled by its first question, on one line and trimmed."""
    line = " ".join(_storable(question).split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


class SqlStore:
    def __init__(self, url: str, *, timeout: float = 5.0, checkpoint_every: int = 200) -> None:
        self._url = database_url_with_driver(url)
        self._sqlite = self._url.startswith("sqlite")
        self._timeout = timeout
        self._write_lock = asyncio.Lock()
        self._engine: Engine | None = None  # SQLite's
        self._loop_engine: Engine | None = None  # SQLite's, used on the event loop: it never waits
        # Its one connection, kept open between transactions: a checkout from the pool and its return
        # (events, a rollback to reset it) cost twice what the BEGIN and COMMIT of a small write do.
        self._loop_connection: Connection | None = None
        self._async_engine: AsyncEngine | None = None  # PostgreSQL's
        self._threads: ThreadPoolExecutor | None = None
        self._checkpoint_every = checkpoint_every
        self._loop_writes = 0
        self._checkpointing: asyncio.Future[None] | None = None
        # How each answer's start and finish run their statements (on SQLite, straight on the cursor).
        self._statements: Statements = SqlAlchemyStatements()
        if self._sqlite:
            database = make_url(self._url).database
            in_memory = not database or database == ":memory:"
            if database and not in_memory:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self._engine = create_engine(self._url, connect_args={"timeout": timeout})
            event.listen(self._engine, "connect", _sqlite_pragmas)
            event.listen(self._engine, "begin", _sqlite_begin)
            self._statements = SqliteStatements(self._engine.dialect)
            # WAL lets reads run beside the one write; an in-memory database is one connection, one thread.
            self._threads = ThreadPoolExecutor(1 if in_memory else 4, thread_name_prefix="folyam-sqlite")
            if not in_memory:  # (another connection to ":memory:" would be another, empty database)
                self._loop_engine = create_engine(
                    self._url, poolclass=QueuePool, pool_size=1, max_overflow=0, connect_args={"timeout": 0}
                )
                event.listen(self._loop_engine, "connect", _sqlite_loop_pragmas)
                event.listen(self._loop_engine, "begin", _sqlite_begin)
        else:
            self._async_engine = create_async_engine(
                self._url,
                pool_size=10,
                max_overflow=20,
                pool_timeout=timeout,
                pool_pre_ping=True,
                connect_args={"timeout": timeout, "command_timeout": timeout},
            )

    async def migrate(self, revision: str = "head") -> None:
        """Up to `revision` (the latest by default; tests migrate to an older one first). One migration
        at a time, whoever starts it: PostgreSQL's advisory lock, or for SQLite a file lock beside the
        database (processes sharing the file start together; Alembic's state is global within a process,
        too)."""

        def upgrade(connection: Connection) -> None:
            if not self._sqlite:
                connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
            _upgrade(connection, revision)

        database = make_url(self._url).database
        with contextlib.ExitStack() as held:
            if self._sqlite and database and database != ":memory:":
                lock = held.enter_context(open(f"{database}.migrating", "a"))
                await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
            # Migrations may take a while on a big database: no time limit here.
            await self._run(upgrade, limit=None, writes=True)

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
        if len(model) > MODEL_CHARS:
            raise ValueError(f"a model name has at most {MODEL_CHARS} characters, not {len(model)}: {model[:40]!r}…")
        prompt = _storable(system_prompt) if system_prompt and system_prompt.strip() else None

        statements = self._statements

        def start(connection: Connection) -> StartedExchange:
            found = _lock_conversation(statements, connection, conversation_id)
            now = _now()  # after the lock: the order of creation is the order of the transactions
            owner, title = found if found is not None else (None, title_of(question))
            if owner is not None and owner != session_id:
                raise NotYours(conversation_id)
            # A re-sent form finds what its first sending started (in a new conversation there is nothing
            # to find: the unique request id would refuse a race, and the retry below then finds it).
            existing = _exchange_by_request(connection, session_id, request_id) if owner else None
            if existing is not None:
                return StartedExchange(existing, created=False, title=title)
            replaced: list[str] = []
            if owner is None:
                if replaces is not None:
                    raise UnknownExchange(conversation_id, replaces)
                statements.rowcount(
                    connection,
                    _INSERT_CONVERSATION,
                    {
                        "id": conversation_id,
                        "session_id": session_id,
                        "title": title,
                        "created_at": now,
                        "updated_at": now,
                        "model": model,
                        "system_prompt": prompt,
                    },
                )
            else:
                _refuse_if_busy(statements, connection, conversation_id)
                if replaces is not None:
                    deleted = _delete_from(connection, conversation_id, replaces)
                    if deleted is None:
                        raise UnknownExchange(conversation_id, replaces)
                    replaced = deleted
                statements.rowcount(
                    connection,
                    _TOUCH_CONVERSATION,
                    {"conversation_id": conversation_id, "updated_at": now, "model": model, "system_prompt": prompt},
                )
            earlier = _history(connection, conversation_id, history) if owner is not None and history else []
            values = {
                "id": exchange_id,
                "conversation_id": conversation_id,
                "session_id": session_id,
                "request_id": request_id,
                "question": _storable(question),
                "answer": "",
                "status": "running",
                "model": model,
                "created_at": now,
            }
            statements.rowcount(connection, _INSERT_EXCHANGE, values)
            return StartedExchange(ExchangeRecord(**values), True, earlier, replaced, title)  # type: ignore[arg-type]

        try:
            return await self._run(start, writes=True, on_loop=True)
        except IntegrityError:
            # Another process took the same request id, or made the conversation, a moment before: once
            # more, now that its transaction is visible (it then decides: the same exchange, NotYours or
            # ConversationBusy).
            try:
                return await self._run(start, writes=True)
            except IntegrityError as exc:
                raise StoreUnavailable("the database refused the exchange twice") from exc

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
        values = {
            "exchange_id": exchange_id,
            "answer": _storable(answer),
            "status": status,
            "notice_title": _storable(notice[0]) if notice else None,
            "notice_message": _storable(notice[1]) if notice else None,
            "timing": timing,
            "reasoning": _storable(reasoning) if reasoning else None,
            "refused": refused or None,
            "finished_at": _now(),
        }
        statement = _FINISH_IF_RUNNING if only_if_running else _FINISH
        statements = self._statements

        def finish(connection: Connection) -> bool:
            return bool(statements.rowcount(connection, statement, values))

        return await self._run(finish, writes=True, on_loop=True)

    async def truncate(self, session_id: str, conversation_id: str, exchange_id: str) -> list[str] | None:
        statements = self._statements

        def truncate(connection: Connection) -> list[str] | None:
            found = _lock_conversation(statements, connection, conversation_id)
            if found is None or found[0] != session_id:
                return None
            _refuse_if_busy(statements, connection, conversation_id)
            deleted = _delete_from(connection, conversation_id, exchange_id)
            if deleted is not None:
                connection.execute(
                    update(conversations).where(conversations.c.id == conversation_id).values(updated_at=_now())
                )
            return deleted

        return await self._run(truncate, writes=True)

    async def conversation(self, session_id: str, conversation_id: str) -> ConversationRecord | None:
        def find(connection: Connection) -> ConversationRecord | None:
            row = connection.execute(
                _CONVERSATION, {"conversation_id": conversation_id, "session_id": session_id}
            ).first()
            if row is None:
                return None
            return ConversationRecord(
                id=row.id,
                session_id=row.session_id,
                title=row.title,
                created_at=row.created_at,
                updated_at=row.updated_at,
                model=row.model,
                system_prompt=row.system_prompt,
            )

        return await self._run(find, on_loop=True)

    async def exchange(self, session_id: str, exchange_id: str) -> ExchangeRecord | None:
        def find(connection: Connection) -> ExchangeRecord | None:
            row = connection.execute(_EXCHANGE, {"exchange_id": exchange_id, "session_id": session_id}).first()
            return _record(row) if row is not None else None

        return await self._run(find, on_loop=True)

    async def exchanges(self, session_id: str, conversation_id: str) -> list[ExchangeRecord] | None:
        def find(connection: Connection) -> list[ExchangeRecord] | None:
            owner = connection.execute(
                select(conversations.c.session_id).where(conversations.c.id == conversation_id)
            ).scalar_one_or_none()
            if owner != session_id:
                return None
            rows = connection.execute(
                select(exchanges)
                .where(exchanges.c.conversation_id == conversation_id)
                .order_by(exchanges.c.created_at, exchanges.c.id)
            )
            return [_record(row) for row in rows]

        return await self._run(find)

    async def history(self, conversation_id: str, limit: int) -> list[ChatMessage]:
        def find(connection: Connection) -> list[ChatMessage]:
            return _history(connection, conversation_id, limit)

        return await self._run(find, on_loop=True)

    async def conversations(
        self, session_id: str, limit: int, *, older_than: ListPosition | None = None
    ) -> list[ConversationSummary]:
        def find(connection: Connection) -> list[ConversationSummary]:
            if older_than is None:
                rows = connection.execute(_CONVERSATIONS, {"session_id": session_id, "limit": limit})
            else:
                after = {"updated_at": older_than.updated_at, "id": older_than.conversation_id}
                rows = connection.execute(_OLDER_CONVERSATIONS, {"session_id": session_id, "limit": limit, **after})
            return [ConversationSummary(id=row.id, title=row.title, updated_at=row.updated_at) for row in rows]

        return await self._run(find, on_loop=True)

    async def rename(self, session_id: str, conversation_id: str, title: str) -> bool:
        def rename(connection: Connection) -> bool:
            result = connection.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id, conversations.c.session_id == session_id)
                .values(title=title_of(title) or "Untitled")
            )
            return bool(result.rowcount)

        return await self._run(rename, writes=True, on_loop=True)

    async def delete(self, session_id: str, conversation_id: str) -> bool:
        def remove(connection: Connection) -> bool:
            # Not relying on ON DELETE CASCADE: SQLite enforces it only with its foreign_keys pragma on.
            owned = select(conversations.c.id).where(
                conversations.c.id == conversation_id, conversations.c.session_id == session_id
            )
            connection.execute(delete(exchanges).where(exchanges.c.conversation_id.in_(owned)))
            result = connection.execute(
                delete(conversations).where(
                    conversations.c.id == conversation_id, conversations.c.session_id == session_id
                )
            )
            return bool(result.rowcount)

        return await self._run(remove, writes=True)

    async def running_exchanges(self) -> list[ExchangeRecord]:
        def find(connection: Connection) -> list[ExchangeRecord]:
            rows = connection.execute(select(exchanges).where(exchanges.c.status == "running"))
            return [_record(row) for row in rows]

        return await self._run(find)

    async def schema_differences(self) -> list[Any]:
        """What differs between the database's schema and the tables the code declares (nothing, once
        migrated): Alembic's comparison, as `alembic revision --autogenerate` would see it."""

        def compare(connection: Connection) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(connection), metadata))

        return await self._run(compare)

    async def count_exchanges(self) -> int:
        """For tests and benchmarks: how many exchanges there are in all."""

        def count(connection: Connection) -> int:
            return int(connection.execute(select(func.count()).select_from(exchanges)).scalar_one())

        return await self._run(count)

    async def aclose(self) -> None:
        if self._async_engine is not None:
            await self._async_engine.dispose()
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        if self._loop_connection is not None:
            self._loop_connection.close()
            self._loop_connection = None
        if self._loop_engine is not None:
            self._loop_engine.dispose()
        if self._engine is not None and self._threads is not None:
            engine = self._engine
            await asyncio.get_running_loop().run_in_executor(self._threads, engine.dispose)
            self._threads.shutdown(wait=False)

    async def _run(
        self, work: Callable[[Connection], T], *, limit: float | None = 0, writes: bool = False, on_loop: bool = False
    ) -> T:
        """`work` in one transaction, within the time limit; database failures become StoreUnavailable.
        `on_loop`: a small transaction (bounded work), which on SQLite runs on the event loop unless it
        would have to wait for SQLite's lock; one that comes while a write waits for it in a thread waits
        its turn, then runs on the loop. SQLite has one writer at a time: in a thread, writes take turns on
        a lock (rather than in sqlite's busy handler, which sleeps). The queue has a limit of its own:
        waiting behind a burst of questions on a busy process is not the database failing."""
        limit = self._timeout if limit == 0 else limit
        queued = writes and self._sqlite
        loop_engine = self._loop_engine if on_loop else None
        try:
            if loop_engine is not None and not (writes and self._write_lock.locked()):
                with contextlib.suppress(_LockHeld):
                    return self._on_loop(loop_engine, work, writes)
                loop_engine = None  # SQLite's lock is held: wait for it in a thread
            if queued:
                async with asyncio.timeout(None if limit is None else limit * _QUEUE_FACTOR):
                    await self._write_lock.acquire()
            try:
                if loop_engine is not None:
                    # It waited for a write in a thread, not for SQLite's lock: now its turn has come, on
                    # the loop after all. (Sent to the thread too, every write behind a checkpoint went
                    # there, and so did the ones behind those, while questions kept coming: a third of a
                    # busy process's writes paid a thread's hand-overs and a cold page cache.)
                    with contextlib.suppress(_LockHeld):
                        return self._on_loop(loop_engine, work, writes)
                async with asyncio.timeout(limit):
                    return await self._transaction(work, writes)
            finally:
                if queued:
                    self._write_lock.release()
        except (NotYours, ConversationBusy, UnknownExchange, IntegrityError):
            raise
        except TimeoutError as exc:
            raise StoreUnavailable(f"the database did not answer within {self._timeout:g} s") from exc
        except (SQLAlchemyError, DBAPIError, OSError) as exc:
            raise StoreUnavailable(f"the database failed: {type(exc).__name__}") from exc

    async def _transaction(self, work: Callable[[Connection], T], writes: bool) -> T:
        if self._async_engine is not None:
            async with self._async_engine.begin() as connection:
                return await connection.run_sync(work)
        assert self._engine is not None and self._threads is not None
        engine = self._engine
        # Set when the caller gives up (time limit, cancellation): the thread then rolls back rather than
        # commit what the caller was told had failed.
        abandoned = threading.Event()

        def transaction() -> T:
            with engine.connect() as connection:
                connection.execution_options(sqlite_begin="BEGIN IMMEDIATE" if writes else "BEGIN")
                with connection.begin():
                    result = work(connection)
                    if abandoned.is_set():
                        raise _Abandoned
                    return result

        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, transaction)
        except BaseException:
            abandoned.set()
            raise

    def _on_loop(self, engine: Engine, work: Callable[[Connection], T], writes: bool) -> T:
        """`work` in a transaction right here, on a connection that does not wait for locks: _LockHeld
        (rolled back) when another connection holds the one it needs."""
        if self._loop_connection is not None and self._loop_connection.invalidated:
            self._drop_loop_connection()  # (SQLAlchemy found it broken during the last transaction's work)
        connection = self._loop_connection
        if connection is None:
            connection = self._loop_connection = engine.connect()
        begin = "BEGIN IMMEDIATE" if writes else "BEGIN"
        if connection.get_execution_options().get("sqlite_begin") != begin:
            connection.execution_options(sqlite_begin=begin)
        try:
            with connection.begin():
                result = work(connection)
        except OperationalError as exc:
            if _lock_held(exc):
                raise _LockHeld from exc
            self._drop_loop_connection()
            raise
        except DBAPIError as exc:
            if not isinstance(exc, IntegrityError):  # (a race another process won: the connection is fine)
                self._drop_loop_connection()
            raise
        if writes:
            self._loop_writes += 1
            if self._loop_writes % self._checkpoint_every == 0 and self._checkpointing is None:
                self._checkpointing = asyncio.ensure_future(self._checkpoint())
        return result

    def _drop_loop_connection(self) -> None:
        """After a failure of the database itself: the next transaction on the loop gets a new sqlite3
        connection. (A BEGIN that fails goes straight to sqlite3, see `_sqlite_begin`, so SQLAlchemy never
        sees a broken connection to invalidate it; returned to the pool each time, it was replaced there.)"""
        connection, self._loop_connection = self._loop_connection, None
        if connection is not None:
            connection.invalidate()
            connection.close()

    async def _checkpoint(self) -> None:
        """The event loop's connection does not checkpoint the WAL into the database (the fsyncs would
        stall every answer): a store thread does, every `checkpoint_every` of its writes. RESTART, not
        PASSIVE: the WAL only starts over when a write begins after a complete checkpoint, which with
        the loop writing meanwhile hardly ever happened, and the file grew by every answer. RESTART holds
        the write lock for the moment it copies (the loop's writes meanwhile wait in a thread), so the
        next write starts the file over."""
        assert self._engine is not None and self._threads is not None
        engine = self._engine

        def checkpoint() -> None:
            # On the DB-API connection: a Connection would begin a transaction first, and a checkpoint
            # inside one cannot pass that transaction's snapshot.
            connection = engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute("PRAGMA wal_checkpoint(RESTART)")
                cursor.close()
            finally:
                connection.close()

        try:
            await asyncio.get_running_loop().run_in_executor(self._threads, checkpoint)
        except (SQLAlchemyError, OSError):
            logger.warning("checkpointing the SQLite WAL failed", exc_info=True)
        finally:
            self._checkpointing = None


class _Abandoned(Exception):
    """Raised in a store thread to roll back a transaction whose caller has given up on it."""


class _LockHeld(Exception):
    """A transaction on the event loop found the lock it needs held by another connection."""


def _lock_held(exc: OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, with any extended code."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


# The statements of every answer, built once: a statement is immutable, and SQLAlchemy then finds its
# compiled form by a cache key it memoizes on the object, instead of building and hashing a new one.
_INSERT_CONVERSATION: Final = insert(conversations)
_INSERT_EXCHANGE: Final = insert(exchanges)
# Without values(): the SET clause is the columns named in the parameters (those not used in WHERE).
_FINISH: Final = update(exchanges).where(exchanges.c.id == bindparam("exchange_id"))
_FINISH_IF_RUNNING: Final = _FINISH.where(exchanges.c.status == "running")
_TOUCH_CONVERSATION: Final = update(conversations).where(conversations.c.id == bindparam("conversation_id"))
_CONVERSATION: Final = select(conversations).where(
    conversations.c.id == bindparam("conversation_id"), conversations.c.session_id == bindparam("session_id")
)
_EXCHANGE: Final = select(exchanges).where(
    exchanges.c.id == bindparam("exchange_id"), exchanges.c.session_id == bindparam("session_id")
)
_EXCHANGE_BY_REQUEST: Final = select(exchanges).where(
    exchanges.c.session_id == bindparam("session_id"), exchanges.c.request_id == bindparam("request_id")
)
_CONVERSATIONS: Final = (
    select(conversations.c.id, conversations.c.title, conversations.c.updated_at)
    .where(conversations.c.session_id == bindparam("session_id"))
    .order_by(conversations.c.updated_at.desc(), conversations.c.id)
    .limit(bindparam("limit", type_=Integer))
)
# The page after a place in that order: a keyset, so a page costs the same however deep it is (on the
# (session_id, updated_at) index), and deleting or asking meanwhile shifts no later page.
_OLDER_CONVERSATIONS: Final = _CONVERSATIONS.where(
    or_(
        conversations.c.updated_at < bindparam("updated_at"),
        and_(conversations.c.updated_at == bindparam("updated_at"), conversations.c.id > bindparam("id")),
    )
)
# The conversation's owner, its row locked until the transaction ends: on PostgreSQL, whoever else starts
# or truncates in it waits, then sees what this transaction did (SQLite ignores FOR UPDATE; there, a
# write transaction begins IMMEDIATE, holding the database's write lock).
_LOCK_CONVERSATION: Final = (
    select(conversations.c.session_id, conversations.c.title)
    .where(conversations.c.id == bindparam("conversation_id"))
    .with_for_update()
)
_RUNNING_IN: Final = (
    select(exchanges.c.id)
    .where(exchanges.c.conversation_id == bindparam("conversation_id"), exchanges.c.status == "running")
    .limit(1)
)
_HISTORY: Final = (
    select(exchanges.c.question, exchanges.c.answer)
    .where(exchanges.c.conversation_id == bindparam("conversation_id"), exchanges.c.status != "running")
    .order_by(exchanges.c.created_at.desc(), exchanges.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


def _lock_conversation(statements: Statements, connection: Connection, conversation_id: str) -> tuple[str, str] | None:
    """The conversation's owner (session id) and title, locked for the transaction; None if it is new."""
    row = statements.first(connection, _LOCK_CONVERSATION, {"conversation_id": conversation_id})
    return (row[0], row[1]) if row is not None else None


def _exchange_by_request(connection: Connection, session_id: str, request_id: str) -> ExchangeRecord | None:
    row = connection.execute(_EXCHANGE_BY_REQUEST, {"session_id": session_id, "request_id": request_id}).first()
    return _record(row) if row is not None else None


def _refuse_if_busy(statements: Statements, connection: Connection, conversation_id: str) -> None:
    running = statements.first(connection, _RUNNING_IN, {"conversation_id": conversation_id})
    if running is not None:
        raise ConversationBusy(conversation_id, running[0])


def _delete_from(connection: Connection, conversation_id: str, exchange_id: str) -> list[str] | None:
    """Delete the exchange and every later one (in the order pages show them); their ids, or None when
    the exchange is not in the conversation."""
    created_at = connection.execute(
        select(exchanges.c.created_at).where(
            exchanges.c.id == exchange_id, exchanges.c.conversation_id == conversation_id
        )
    ).scalar_one_or_none()
    if created_at is None:
        return None
    later = or_(
        exchanges.c.created_at > created_at, and_(exchanges.c.created_at == created_at, exchanges.c.id >= exchange_id)
    )
    ids = list(
        connection.execute(
            select(exchanges.c.id)
            .where(exchanges.c.conversation_id == conversation_id, later)
            .order_by(exchanges.c.created_at, exchanges.c.id)
        ).scalars()
    )
    connection.execute(delete(exchanges).where(exchanges.c.id.in_(ids)))
    return ids


def _history(connection: Connection, conversation_id: str, limit: int) -> list[ChatMessage]:
    """The last `limit` ended exchanges of a conversation, as messages in order."""
    rows = connection.execute(_HISTORY, {"conversation_id": conversation_id, "limit": limit})
    messages: list[ChatMessage] = []
    for question, answer in reversed(list(rows)):
        messages.append(ChatMessage(role="user", content=question))
        messages.append(ChatMessage(role="assistant", content=answer))
    return messages


def _record(row: Row[Any]) -> ExchangeRecord:
    return ExchangeRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        session_id=row.session_id,
        request_id=row.request_id,
        question=row.question,
        answer=row.answer,
        status=row.status,
        model=row.model,
        created_at=row.created_at,
        finished_at=row.finished_at,
        notice_title=row.notice_title,
        notice_message=row.notice_message,
        timing=row.timing,
        reasoning=row.reasoning,
        refused=bool(row.refused),
    )


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic.config.Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    alembic.command.upgrade(config, revision)


# How many transactions' time limits a write may wait for its turn on SQLite.
_QUEUE_FACTOR: Final = 6


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    _configure_sqlite(dbapi_connection, busy_timeout_ms=5000, checkpoints=True)


def _sqlite_loop_pragmas(dbapi_connection: Any, _: Any) -> None:
    # On the event loop: never wait for a lock (a thread does), and leave checkpoints to a thread too
    # (SqlStore._checkpoint).
    _configure_sqlite(dbapi_connection, busy_timeout_ms=0, checkpoints=False)


def _configure_sqlite(dbapi_connection: Any, *, busy_timeout_ms: int, checkpoints: bool) -> None:
    # The store begins its transactions itself (_sqlite_begin): sqlite3's own implicit BEGIN comes only
    # before a write, so a transaction's reads before it would see no consistent snapshot.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")  # first: it applies to the pragmas below
    # WAL: readers do not block the writer, and several processes on one machine may share the file.
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL syncs at checkpoints, not at every commit: a commit survives the process dying
    # (the point of the store), only a power cut may lose the last ones; FULL spent an fsync per
    # question and per answer, which made the store the bottleneck of a busy process.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    if not checkpoints:
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # IMMEDIATE for a write: it takes the write lock at once (waiting for it up to busy_timeout), so a
    # transaction never reads, then finds another process wrote meanwhile and fails on its first write.
    # Straight on the sqlite3 connection: `exec_driver_sql` gave the BEGIN a statement's whole execution
    # (events, context, a result), a fifth of a small transaction's cost. Its error is raised as SQLAlchemy
    # would have wrapped it (a lock held, for one: see `SqlStore._on_loop`).
    execute_on_driver(connection, connection.get_execution_options().get("sqlite_begin", "BEGIN")).close()
