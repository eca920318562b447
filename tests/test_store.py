"""The conversation store on SQLite and on PostgreSQL: ownership, idempotency, history, the list, rename
and delete, a conversation's model and system prompt, one question at a time, truncating, an answer's
thinking, and migrations (an empty database, one migrated before, ones with data from 0001 and 0002, and the
schema the code expects)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import alembic.command
import alembic.config
import pytest
from sqlalchemy import Connection, Pool, event, text
from sqlalchemy.ext.asyncio import create_async_engine

from folyam.components import Timing, make_environment, render_component
from folyam.store import (
    ConversationBusy,
    ListPosition,
    NotYours,
    StartedExchange,
    StoreUnavailable,
    UnknownExchange,
    sql,
)
from folyam.store.sql import MIGRATIONS, SqlStore, database_url_with_driver, title_of
from tests.support.services import Postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        postgres: Postgres = request.getfixturevalue("postgres")
        yield postgres.create_database()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    store = SqlStore(database_url)
    await store.migrate()
    yield store
    await store.aclose()


@pytest.fixture
async def sqlite_file(tmp_path: Path) -> AsyncIterator[tuple[SqlStore, Path]]:
    """A migrated store on a SQLite file, and the file (for another process's connection to it)."""
    path = tmp_path / "store.db"
    store = SqlStore(f"sqlite:///{path}")
    await store.migrate()
    yield store, path
    await store.aclose()


async def start(store: SqlStore, exchange: str, request: str, *, session: str = "s1", conversation: str = "c1") -> bool:
    started = await store.start_exchange(
        exchange_id=exchange, session_id=session, conversation_id=conversation, request_id=request,
        question=f"question {exchange}", model="m",
    )  # fmt: skip
    return started.created


async def finish(store: SqlStore, exchange: str, answer: str = "") -> None:
    await store.finish_exchange(
        exchange, answer=answer or f"answer {exchange}", status="finished", notice=None, timing=None
    )


async def test_the_same_request_id_gives_the_same_exchange(store: SqlStore) -> None:
    assert await start(store, "e1", "r1")
    assert not await start(store, "e2", "r1")  # a re-sent form: the first one, not a second
    records = await store.exchanges("s1", "c1")
    assert records is not None and [r.id for r in records] == ["e1"]
    assert await start(store, "e3", "r1", session="s2", conversation="c2")  # another session's own id


async def test_a_conversation_belongs_to_the_session_that_began_it(store: SqlStore) -> None:
    await start(store, "e1", "r1")
    with pytest.raises(NotYours):
        await start(store, "e2", "r2", session="intruder")
    assert await store.exchanges("intruder", "c1") is None
    assert await store.exchange("intruder", "e1") is None
    assert not await store.rename("intruder", "c1", "mine now")
    assert not await store.delete("intruder", "c1")
    assert (await store.exchanges("s1", "c1") or [])[0].id == "e1"


async def test_an_exchange_is_finished_once_with_its_outcome(store: SqlStore) -> None:
    await start(store, "e1", "r1")
    timing = {"model": "m", "first_token_ms": 12.5, "total_ms": 80.0, "chunks": 3, "tokens": 3,
              "tokens_reported": True, "tokens_per_second": 40.0, "prompt_tokens": 9, "total_tokens": 12}  # fmt: skip
    assert await store.finish_exchange("e1", answer="Hi \x00 there", status="finished", notice=None, timing=timing)
    # Someone else noticing a dead process later must not overwrite it.
    assert not await store.finish_exchange(
        "e1", answer="", status="interrupted", notice=("x", "y"), timing=None, only_if_running=True
    )
    record = await store.exchange("s1", "e1")
    assert record is not None and record.status == "finished" and record.timing == timing
    assert record.answer == "Hi \ufffd there"  # PostgreSQL keeps no NUL; the page shows U+FFFD either way
    assert await store.running_exchanges() == []


async def test_history_is_the_last_ended_exchanges_in_order(store: SqlStore) -> None:
    for n in range(5):
        await start(store, f"e{n}", f"r{n}")
        await asyncio.sleep(0.002)  # distinct creation times
        if n != 4:
            await store.finish_exchange(f"e{n}", answer=f"answer {n}", status="finished", notice=None, timing=None)
    history = await store.history("c1", limit=3)
    assert [m["content"] for m in history] == [
        "question e1",
        "answer 1",
        "question e2",
        "answer 2",
        "question e3",
        "answer 3",
    ]  # fmt: skip  (e4 still runs)
    assert [r.id for r in await store.running_exchanges()] == ["e4"]


async def test_a_start_gives_the_conversations_title(store: SqlStore) -> None:
    async def title(exchange: str, request: str, question: str) -> str:
        started = await store.start_exchange(
            exchange_id=exchange, session_id="s1", conversation_id="c1", request_id=request, question=question,
            model="m",
        )  # fmt: skip
        return started.title

    assert await title("e1", "r1", "  First\n question ") == "First question"  # it began the conversation
    await finish(store, "e1")
    assert await title("e2", "r2", "Second question") == "First question"  # the conversation's, not this one's
    await finish(store, "e2")
    assert await store.rename("s1", "c1", "Renamed")
    assert await title("e3", "r3", "Third question") == "Renamed"
    assert await title("e4", "r3", "Third question") == "Renamed"  # a re-sent form finds the same


async def test_conversations_are_listed_newest_first_renamed_and_deleted(store: SqlStore) -> None:
    await start(store, "e1", "r1", conversation="old")
    await finish(store, "e1")
    await asyncio.sleep(0.002)
    await start(store, "e2", "r2", conversation="new")
    await asyncio.sleep(0.002)
    await start(store, "e3", "r3", conversation="old")  # a follow-up makes it the newest again
    assert [c.id for c in await store.conversations("s1", limit=10)] == ["old", "new"]
    assert [c.title for c in await store.conversations("s1", limit=10)] == ["question e1", "question e2"]
    assert await store.rename("s1", "new", "  Renamed\n  chat ")
    assert (await store.conversations("s1", limit=10))[1].title == "Renamed chat"
    assert await store.delete("s1", "old")
    assert [c.id for c in await store.conversations("s1", limit=10)] == ["new"]
    assert await store.exchanges("s1", "old") is None and await store.exchange("s1", "e1") is None


async def test_the_list_comes_a_page_at_a_time_from_any_place_in_it(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    noon = datetime(2026, 12, 3, 12, 0, 0, 123_456)
    clock = [noon]
    monkeypatch.setattr(sql, "_now", lambda: clock[0])
    # "a" and "b" at the same instant (the id orders them), then "c", "d", "e" a second apart; another
    # session's conversation at that instant too.
    for name, seconds in [("b", 0), ("a", 0), ("c", 1), ("d", 2), ("e", 3)]:
        clock[0] = noon + timedelta(seconds=seconds)
        await start(store, f"e{name}", f"r{name}", conversation=name)
    clock[0] = noon
    await start(store, "ex", "rx", session="s2", conversation="a2")

    pages, after = [], None
    while page := await store.conversations("s1", 2, older_than=after):
        pages.append([c.id for c in page])
        after = page[-1].position
    assert pages == [["e", "d"], ["c", "a"], ["b"]]
    assert after == ListPosition(noon, "b")
    # From a place whose conversation is gone (deleted meanwhile), the list goes on where it would have.
    assert await store.delete("s1", "a")
    assert [c.id for c in await store.conversations("s1", 9, older_than=ListPosition(noon, "a"))] == ["b"]


def test_titles_are_one_trimmed_line() -> None:
    assert title_of("  What is\n\tthis?  ") == "What is this?"
    assert len(title_of("x" * 500)) == 80 and title_of("x" * 500).endswith("…")


async def test_migrating_again_keeps_the_data(database_url: str) -> None:
    first = SqlStore(database_url)
    await first.migrate()
    await start(first, "e1", "r1")
    await first.aclose()
    again = SqlStore(database_url)
    await asyncio.gather(again.migrate(), again.migrate())  # two processes starting at once
    assert [r.id for r in await again.exchanges("s1", "c1") or []] == ["e1"]
    await again.aclose()


async def test_the_migrations_build_the_schema_the_code_uses(store: SqlStore) -> None:
    assert await store.schema_differences() == []


def test_database_urls_get_the_app_s_driver_and_others_are_refused() -> None:
    assert database_url_with_driver("sqlite:///data/f.db") == "sqlite+pysqlite:///data/f.db"
    assert database_url_with_driver("postgresql://u:p@h:5433/db") == "postgresql+asyncpg://u:p@h:5433/db"
    with pytest.raises(ValueError, match="must be sqlite:///… or postgresql://…, not mysql://"):
        database_url_with_driver("mysql://h/db")


def async_database_url(url: str) -> str:
    """The tests look at a database through an async engine of their own (aiosqlite for SQLite)."""
    return database_url_with_driver(url).replace("sqlite+pysqlite", "sqlite+aiosqlite", 1)


# -- The model and system prompt of a conversation --------------------------------------------------------


async def ask(
    store: SqlStore, exchange: str, *, model: str = "m", system_prompt: str | None = None, replaces: str | None = None,
    session: str = "s1", conversation: str = "c1", request: str | None = None,
) -> StartedExchange:  # fmt: skip
    return await store.start_exchange(
        exchange_id=exchange, session_id=session, conversation_id=conversation, request_id=request or f"r-{exchange}",
        question=f"question {exchange}", model=model, system_prompt=system_prompt, history=10, replaces=replaces,
    )  # fmt: skip


async def test_a_conversation_keeps_the_model_and_system_prompt_of_its_latest_question(store: SqlStore) -> None:
    await ask(store, "e1", model="small", system_prompt="Answer in French.")
    found = await store.conversation("s1", "c1")
    assert found is not None and (found.model, found.system_prompt, found.title) == (
        "small", "Answer in French.", "question e1",
    )  # fmt: skip
    await finish(store, "e1")
    await ask(store, "e2", model="large", system_prompt="  \n ")  # switched model, prompt cleared
    found = await store.conversation("s1", "c1")
    assert found is not None and (found.model, found.system_prompt) == ("large", None)
    # Each exchange keeps the model that answered it.
    assert [(r.id, r.model) for r in await store.exchanges("s1", "c1") or []] == [("e1", "small"), ("e2", "large")]
    assert await store.conversation("intruder", "c1") is None
    assert await store.conversation("s1", "missing") is None


async def test_a_model_name_longer_than_the_column_is_refused(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="at most 200 characters, not 201"):
        await ask(store, "e1", model="m" * 201)
    assert await store.conversation("s1", "c1") is None


# -- One question at a time -------------------------------------------------------------------------------


async def test_a_conversation_answers_one_question_at_a_time(store: SqlStore) -> None:
    await ask(store, "e1")
    with pytest.raises(ConversationBusy) as busy:
        await ask(store, "e2")
    assert (busy.value.conversation_id, busy.value.exchange_id) == ("c1", "e1")
    again = await ask(store, "e3", request="r-e1")  # the first question re-sent: its own exchange, as before
    assert (again.exchange.id, again.created) == ("e1", False)
    assert await ask(store, "other", conversation="c2")  # other conversations are not held up
    await store.finish_exchange("e1", answer="", status="stopped", notice=None, timing=None)
    started = await ask(store, "e2")
    assert started.created and [m["content"] for m in started.history] == ["question e1", ""]
    assert [r.id for r in await store.exchanges("s1", "c1") or []] == ["e1", "e2"]


@pytest.mark.parametrize("new_conversation", [False, True], ids=["follow-up", "first question"])
async def test_of_concurrent_questions_one_starts_and_the_others_are_busy(
    database_url: str, new_conversation: bool
) -> None:
    # Two stores are two processes (each its own pool), racing in the database itself: on SQLite too,
    # where a write transaction takes the file's write lock as it begins.
    stores = [SqlStore(database_url) for _ in range(2)]
    await stores[0].migrate()
    try:
        if not new_conversation:
            await ask(stores[0], "e0")
            await finish(stores[0], "e0")
        results = await asyncio.gather(
            *(ask(stores[n % len(stores)], f"e{n + 1}") for n in range(12)), return_exceptions=True
        )
        started = [r for r in results if isinstance(r, StartedExchange)]
        assert len(started) == 1 and started[0].created, results
        assert all(isinstance(r, ConversationBusy) for r in results if r not in started), results
        running = [r.id for r in await stores[0].exchanges("s1", "c1") or [] if r.running]
        assert running == [started[0].exchange.id]
    finally:
        for store in stores:
            await store.aclose()


# -- Truncating: regenerate, edit -------------------------------------------------------------------------


async def three_finished(store: SqlStore) -> None:
    for n in (1, 2, 3):
        await ask(store, f"e{n}")
        await finish(store, f"e{n}")
        await asyncio.sleep(0.002)


async def test_truncate_deletes_the_exchange_and_every_later_one(store: SqlStore) -> None:
    await three_finished(store)
    await ask(store, "elsewhere", conversation="c2")
    before = await store.conversation("s1", "c1")
    assert await store.truncate("s1", "c1", "e2") == ["e2", "e3"]
    assert [r.id for r in await store.exchanges("s1", "c1") or []] == ["e1"]
    after = await store.conversation("s1", "c1")
    assert before is not None and after is not None and after.updated_at > before.updated_at
    assert await store.exchange("s1", "e3") is None and await store.exchange("s1", "elsewhere") is not None
    assert await store.truncate("s1", "c1", "e1") == ["e1"]
    assert await store.exchanges("s1", "c1") == []  # the conversation stays, empty


async def test_truncate_only_in_the_sessions_own_conversation(store: SqlStore) -> None:
    await three_finished(store)
    await ask(store, "theirs", session="s2", conversation="c2")
    assert await store.truncate("intruder", "c1", "e1") is None
    assert await store.truncate("s1", "c2", "theirs") is None
    assert await store.truncate("s1", "c1", "theirs") is None  # not this conversation's exchange
    assert await store.truncate("s1", "c1", "missing") is None
    assert await store.truncate("s1", "missing", "e1") is None
    assert len(await store.exchanges("s1", "c1") or []) == 3


async def test_truncate_is_refused_while_the_conversation_answers(store: SqlStore) -> None:
    await three_finished(store)
    await ask(store, "e4")
    with pytest.raises(ConversationBusy):
        await store.truncate("s1", "c1", "e2")
    assert len(await store.exchanges("s1", "c1") or []) == 4


async def test_a_question_that_replaces_an_exchange_gets_the_history_before_it(store: SqlStore) -> None:
    await three_finished(store)
    started = await ask(store, "e2b", replaces="e2", model="other", system_prompt="Be brief.")
    assert started.created and started.replaced == ["e2", "e3"]
    assert [m["content"] for m in started.history] == ["question e1", "answer e1"]
    assert [r.id for r in await store.exchanges("s1", "c1") or []] == ["e1", "e2b"]
    found = await store.conversation("s1", "c1")
    assert found is not None and (found.model, found.system_prompt) == ("other", "Be brief.")
    # Re-sent: the same exchange, nothing more deleted.
    again = await ask(store, "e2c", replaces="e2", request="r-e2b")
    assert (again.exchange.id, again.created, again.replaced) == ("e2b", False, [])
    with pytest.raises(ConversationBusy):
        await ask(store, "e2d", replaces="e1")
    await finish(store, "e2b")
    with pytest.raises(UnknownExchange):
        await ask(store, "e5", replaces="e3")  # already gone
    with pytest.raises(UnknownExchange):
        await ask(store, "e6", replaces="e1", conversation="new")
    assert await store.conversation("s1", "new") is None
    assert [r.id for r in await store.exchanges("s1", "c1") or []] == ["e1", "e2b"]


# -- Migration 0001 → 0002 with data ----------------------------------------------------------------------


async def test_migrating_a_database_with_conversations_keeps_them_and_gives_each_its_model(database_url: str) -> None:
    old = SqlStore(database_url)
    await old.migrate("0001")
    engine = create_async_engine(async_database_url(database_url))
    async with engine.begin() as connection:
        for conversation, created in [("c1", "2026-11-01 10:00:00"), ("c2", "2026-11-02 10:00:00")]:
            await connection.execute(
                text(
                    "INSERT INTO conversations (id, session_id, title, created_at, updated_at) "
                    "VALUES (:id, 's1', 't', :at, :at)"
                ),
                {"id": conversation, "at": datetime.fromisoformat(created)},
            )
        for exchange, conversation, model, minute in [("e1", "c1", "old", 1), ("e2", "c1", "newer", 2)]:
            await connection.execute(
                text(
                    "INSERT INTO exchanges (id, conversation_id, session_id, request_id, question, answer, status, "
                    "model, created_at) VALUES (:id, :c, 's1', :id, 'q', 'a', 'finished', :model, :at)"
                ),
                {"id": exchange, "c": conversation, "model": model, "at": datetime(2026, 11, 1, 10, minute)},
            )
    await engine.dispose()
    await old.aclose()

    store = SqlStore(database_url)
    await store.migrate()
    try:
        assert await store.schema_differences() == []
        first, second = await store.conversation("s1", "c1"), await store.conversation("s1", "c2")
        assert first is not None and (first.model, first.system_prompt) == ("newer", None)
        assert second is not None and second.model is None  # no exchange to say
        assert [r.id for r in await store.exchanges("s1", "c1") or []] == ["e1", "e2"]
        await ask(store, "e3", model="newest")
        assert [r.id for r in await store.exchanges("s1", "c1") or []] == ["e1", "e2", "e3"]
    finally:
        await store.aclose()
    await downgrade(database_url, "0001")  # and back: the exchanges are kept
    engine = create_async_engine(async_database_url(database_url))
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM exchanges"))).scalar_one() == 3
    await engine.dispose()


async def downgrade(database_url: str, revision: str) -> None:
    """Alembic's downgrade on a connection like the store's (on SQLite, with foreign keys enforced)."""
    engine = create_async_engine(async_database_url(database_url))
    if database_url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA foreign_keys=ON"))

    def run(connection: Connection) -> None:
        config = alembic.config.Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        alembic.command.downgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)
    await engine.dispose()


# -- Migration 0002 → 0003 (thinking, refusals) with data -------------------------------------------------


async def test_an_exchange_keeps_its_thinking_and_whether_it_refused(store: SqlStore) -> None:
    await start(store, "e1", "r1")
    await store.finish_exchange(
        "e1", answer="No.", status="finished", notice=None, timing=None, reasoning="Should I?", refused=True
    )
    await start(store, "e2", "r2")
    await finish(store, "e2")
    first, second = await store.exchanges("s1", "c1") or []
    assert (first.answer, first.reasoning, first.refused) == ("No.", "Should I?", True)
    assert (second.reasoning, second.refused) == (None, False)
    # The thinking is never history.
    assert [m["content"] for m in await store.history("c1", 10)] == ["question e1", "No.", "question e2", "answer e2"]


async def test_migrating_answers_from_before_thinking_keeps_them_and_their_timing_renders(database_url: str) -> None:
    old = SqlStore(database_url)
    await old.migrate("0002")
    old_timing = {
        "model": "m", "first_token_ms": 5.0, "total_ms": 9.0, "chunks": 2, "tokens": 2, "tokens_reported": False,
        "tokens_per_second": None, "prompt_tokens": None, "total_tokens": None,
    }  # fmt: skip
    engine = create_async_engine(async_database_url(database_url))
    async with engine.begin() as connection:  # 0002's columns only: the code's table has more
        at = datetime(2026, 11, 1, 10, 0)
        await connection.execute(
            text(
                "INSERT INTO conversations (id, session_id, title, created_at, updated_at, model) "
                "VALUES ('c1', 's1', 't', :at, :at, 'm')"
            ),
            {"at": at},
        )
        await connection.execute(
            text(
                "INSERT INTO exchanges (id, conversation_id, session_id, request_id, question, answer, status, "
                "model, timing, created_at) VALUES ('e1', 'c1', 's1', 'r1', 'q', 'a', 'finished', 'm', :timing, :at)"
            ),
            {"timing": json.dumps(old_timing), "at": at},
        )
    await engine.dispose()
    await old.aclose()

    store = SqlStore(database_url)
    await store.migrate()
    try:
        assert await store.schema_differences() == []
        [record] = await store.exchanges("s1", "c1") or []
        assert (record.answer, record.reasoning, record.refused) == ("a", None, False)
        assert record.timing is not None
        html = render_component(make_environment(), Timing(**record.timing))
        assert "≈2 (estimated)" in html and "Thinking" not in html
    finally:
        await store.aclose()
    await downgrade(database_url, "0002")  # and back: the exchanges are kept
    engine = create_async_engine(async_database_url(database_url))
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM exchanges"))).scalar_one() == 1
    await engine.dispose()


# -- A write whose caller gave up ---------------------------------------------------------------------------


async def test_a_write_that_timed_out_is_rolled_back_not_committed_later(tmp_path: Path) -> None:
    # Another process holds SQLite's write lock past the store's time limit: the question fails with a
    # clear error, and when the lock is released the store's thread must not record it after all.
    path = tmp_path / "store.db"
    store = SqlStore(f"sqlite:///{path}", timeout=0.3)
    await store.migrate()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match=r"did not answer within 0\.3 s"):
            await start(store, "e1", "r1")
        holder.execute("COMMIT")
        await asyncio.sleep(0.5)  # the store's thread gets the lock now, runs the transaction, rolls back
        assert await store.count_exchanges() == 0
        assert await start(store, "e2", "r2")  # and the store works on
        assert await store.count_exchanges() == 1
    finally:
        holder.close()
        await store.aclose()


class LoopWatch:
    """The longest the running event loop stood still (a 10 ms sleep that took longer), from creation
    until `stop`."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            self.longest = max(self.longest, loop.time() - before)

    def stop(self) -> None:
        self._task.cancel()


class InsertingThreads(dict[str, str]):
    """The name of the thread that inserted each exchange (by id), from creation until `stop`: the store's
    way of running its statements, watched."""

    def __init__(self, store: SqlStore) -> None:
        super().__init__()
        self._store = store
        self._statements = store._statements
        store._statements = self

    def first(self, connection: Connection, statement: Any, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        return self._statements.first(connection, statement, params)

    def rowcount(self, connection: Connection, statement: Any, params: Mapping[str, Any]) -> int:
        if statement is sql._INSERT_EXCHANGE:
            self[params["id"]] = threading.current_thread().name
        return self._statements.rowcount(connection, statement, params)

    def stop(self) -> None:
        self._store._statements = self._statements


async def test_while_another_process_writes_the_event_loop_never_waits_for_the_lock(
    sqlite_file: tuple[SqlStore, Path],
) -> None:
    # An answer's transactions run on the event loop; one that finds the write lock taken goes to a
    # thread and waits there for its turn. Were the loop to wait (sqlite's busy handler sleeps), every
    # stream of the process would stall for as long as the other process writes.
    store, path = sqlite_file
    await start(store, "e1", "r1")
    await finish(store, "e1")
    holder = sqlite3.connect(path, isolation_level=None)
    watch = LoopWatch()
    try:
        holder.execute("BEGIN IMMEDIATE")
        question = asyncio.create_task(start(store, "e2", "r2"))
        # Reads go on meanwhile (WAL): the conversation, as its page would show it.
        assert (await store.conversation("s1", "c1")) is not None
        await asyncio.sleep(0.4)
        assert not question.done()  # its turn has not come
        holder.execute("COMMIT")
        assert await asyncio.wait_for(question, 5)
        assert watch.longest < 0.2, f"the event loop stood still for {watch.longest:.3f} s"
        assert [r.id for r in await store.exchanges("s1", "c1") or []] == ["e1", "e2"]
    finally:
        watch.stop()
        holder.close()


async def test_writes_that_waited_behind_one_in_a_thread_run_on_the_event_loop(
    sqlite_file: tuple[SqlStore, Path],
) -> None:
    # A write that finds SQLite's lock taken (a checkpoint, another process) waits for it in a thread, and
    # this process's writes queue behind it. Once it is done, theirs run on the event loop as before: were
    # they sent to the thread too, each write behind them would follow, and a busy process would stay there.
    store, path = sqlite_file
    inserted_by = InsertingThreads(store)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        first = asyncio.create_task(start(store, "e1", "r1", conversation="c1"))
        await asyncio.sleep(0.1)
        behind = [asyncio.create_task(start(store, f"e{n}", f"r{n}", conversation=f"c{n}")) for n in (2, 3, 4)]
        await asyncio.sleep(0.1)
        assert not any(task.done() for task in [first, *behind])
        holder.execute("COMMIT")
        assert all(await asyncio.wait_for(asyncio.gather(first, *behind), 5))
        main = threading.main_thread().name
        assert inserted_by["e1"] != main  # it waited for SQLite's lock in a thread
        assert [inserted_by[f"e{n}"] for n in (2, 3, 4)] == [main] * 3
        assert await store.count_exchanges() == 4
    finally:
        inserted_by.stop()
        holder.close()


async def test_a_write_whose_turn_comes_while_the_lock_is_taken_again_waits_for_it_in_a_thread(
    sqlite_file: tuple[SqlStore, Path],
) -> None:
    # As the first write (in a thread) hands its connection back, another process takes SQLite's lock
    # again: the write whose turn it is then meets the lock on the loop, and waits for it in a thread
    # (holding up this process's next writes, never the loop); the one after it runs on the loop.
    store, path = sqlite_file
    holder = sqlite3.connect(path, isolation_level=None)
    second_holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    main = threading.main_thread().name
    releases: list[threading.Timer] = []

    def take_the_lock_again(dbapi_connection: Any, record: Any) -> None:
        if threading.current_thread().name != main and not releases:  # once: after the first write
            second_holder.execute("BEGIN IMMEDIATE")
            releases.append(threading.Timer(0.3, second_holder.execute, ["COMMIT"]))
            releases[0].start()

    inserted_by = InsertingThreads(store)
    event.listen(Pool, "checkin", take_the_lock_again)
    watch = LoopWatch()
    try:
        holder.execute("BEGIN IMMEDIATE")
        first = asyncio.create_task(start(store, "e1", "r1", conversation="c1"))
        await asyncio.sleep(0.1)
        behind = [asyncio.create_task(start(store, f"e{n}", f"r{n}", conversation=f"c{n}")) for n in (2, 3)]
        await asyncio.sleep(0.1)
        holder.execute("COMMIT")
        assert all(await asyncio.wait_for(asyncio.gather(first, *behind), 5))
        assert inserted_by["e1"] != main and inserted_by["e2"] != main  # each waited for a lock in a thread
        assert inserted_by["e3"] == main
        assert watch.longest < 0.2, f"the event loop stood still for {watch.longest:.3f} s"
        assert await store.count_exchanges() == 3
    finally:
        watch.stop()
        for release in releases:
            release.join()
        event.remove(Pool, "checkin", take_the_lock_again)
        inserted_by.stop()
        holder.close()
        second_holder.close()


async def test_the_event_loop_s_transactions_keep_one_connection_through_a_lock_met_and_a_failure(
    sqlite_file: tuple[SqlStore, Path],
) -> None:
    # The loop's connection stays open between transactions (a checkout from the pool and its return cost
    # more than a small write's BEGIN and COMMIT); a BEGIN refused by a held lock, or a transaction that
    # failed, leaves it ready for the next one.
    store, path = sqlite_file
    main = threading.main_thread().name
    checkouts: list[str] = []

    def note_checkout(*_: Any) -> None:
        checkouts.append(threading.current_thread().name)

    event.listen(Pool, "checkout", note_checkout)
    holder = sqlite3.connect(path, isolation_level=None)
    inserted_by = InsertingThreads(store)
    try:
        for n in range(5):
            await start(store, f"e{n}", f"r{n}", conversation=f"c{n}")
            await finish(store, f"e{n}")
        holder.execute("BEGIN IMMEDIATE")
        met_the_lock = asyncio.create_task(start(store, "e5", "r5", conversation="c5"))
        await asyncio.sleep(0.1)
        holder.execute("COMMIT")
        assert await asyncio.wait_for(met_the_lock, 5)
        assert inserted_by["e5"] != main  # it met the lock on the loop, and waited for it in a thread
        with pytest.raises(ConversationBusy):  # a transaction that failed on the loop (rolled back)
            await start(store, "e6", "r6", conversation="c5")
        await finish(store, "e5")
        assert await start(store, "e7", "r7", conversation="c7")
        assert inserted_by["e7"] == main
        assert checkouts.count(main) == 1, checkouts
        assert await store.count_exchanges() == 7
    finally:
        inserted_by.stop()
        event.remove(Pool, "checkout", note_checkout)
        holder.close()


async def test_a_broken_sqlite_connection_on_the_event_loop_is_replaced(sqlite_file: tuple[SqlStore, Path]) -> None:
    # Kept between transactions, the loop's connection may break (its sqlite3 connection closed under it):
    # the transaction that finds out fails, and the next one runs on a new connection.
    store, _ = sqlite_file
    main = threading.main_thread().name
    made_on_loop: list[Any] = []

    def note_connect(dbapi_connection: Any, _: Any) -> None:
        if threading.current_thread().name == main:
            made_on_loop.append(dbapi_connection)

    event.listen(Pool, "connect", note_connect)
    try:
        assert await start(store, "e1", "r1")
        [broken] = made_on_loop
        broken.close()
        with pytest.raises(StoreUnavailable):
            await start(store, "e2", "r2", conversation="c2")
        assert await start(store, "e3", "r3", conversation="c3")
        await finish(store, "e3")
        assert len(made_on_loop) == 2
        assert [record.id for record in await store.exchanges("s1", "c3") or []] == ["e3"]
        assert await store.count_exchanges() == 2
    finally:
        event.remove(Pool, "connect", note_connect)


async def test_the_write_ahead_log_is_checkpointed_as_answers_are_written(tmp_path: Path) -> None:
    # The event loop's connection leaves checkpoints to a store thread (their fsyncs would stall the
    # streams); without them the WAL file would grow by every answer ever written.
    path = tmp_path / "store.db"
    store = SqlStore(f"sqlite:///{path}", checkpoint_every=20)
    await store.migrate()
    try:
        for n in range(300):
            await start(store, f"e{n}", f"r{n}", conversation=f"c{n}")
            await finish(store, f"e{n}", answer="word " * 400)
            await asyncio.sleep(0.002)  # (time for the checkpoint's thread, as between real answers)
        wal = path.with_name("store.db-wal").stat().st_size
        # Unchecked it reaches ~16 MB here: 20 writes' pages at a time stay well under 2 MB.
        assert wal < 2_000_000, f"the WAL has grown to {wal:,} bytes"
        assert await store.count_exchanges() == 300
    finally:
        await store.aclose()
