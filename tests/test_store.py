"""The conversation store on SQLite and on PostgreSQL: ownership, idempotency, history, the list, rename
and delete, and migrations (an empty database, one migrated before, and the schema the code expects)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from folyam.store import NotYours
from folyam.store.sql import SqlStore, title_of
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


async def start(store: SqlStore, exchange: str, request: str, *, session: str = "s1", conversation: str = "c1") -> bool:
    _, created, _ = await store.start_exchange(
        exchange_id=exchange, session_id=session, conversation_id=conversation, request_id=request,
        question=f"question {exchange}", model="m",
    )  # fmt: skip
    return created


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
        if n != 3:
            await store.finish_exchange(f"e{n}", answer=f"answer {n}", status="finished", notice=None, timing=None)
    history = await store.history("c1", limit=3)
    assert [m["content"] for m in history] == [
        "question e1",
        "answer 1",
        "question e2",
        "answer 2",
        "question e4",
        "answer 4",
    ]  # fmt: skip  (e3 still runs)
    assert [r.id for r in await store.running_exchanges()] == ["e3"]


async def test_conversations_are_listed_newest_first_renamed_and_deleted(store: SqlStore) -> None:
    await start(store, "e1", "r1", conversation="old")
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


def test_database_urls_get_the_async_driver_and_others_are_refused() -> None:
    from folyam.store.sql import async_database_url

    assert async_database_url("sqlite:///data/f.db") == "sqlite+aiosqlite:///data/f.db"
    assert async_database_url("postgresql://u:p@h:5433/db") == "postgresql+asyncpg://u:p@h:5433/db"
    with pytest.raises(ValueError, match="must be sqlite:///… or postgresql://…, not mysql://"):
        async_database_url("mysql://h/db")
