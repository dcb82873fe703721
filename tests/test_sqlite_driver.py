"""SQLite's connections (service/store/sqlite_driver.py): one trip to a connection's thread per
statement, and everything SQLAlchemy reads from a statement still there; and the store's write
transactions, which take turns in one process (service/store/engine.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from consumers.events import Event
from service.store import Match, Store
from service.store import ledger as ledger_module
from service.subscriptions import SubscriptionIn
from tests.conftest import sqlite_store_with


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with sqlite_store_with(
        tmp_path / "driver.db", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"
    ) as opened:
        yield opened


class Trips:
    """Trips to SQLite connections' threads, counted from `count_trips` on."""

    def __init__(self) -> None:
        self.count = 0


def count_trips(monkeypatch: pytest.MonkeyPatch) -> Trips:
    trips = Trips()
    trip = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, *args: Any, **kwargs: Any) -> Any:
        trips.count += 1
        return await trip(self, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return trips


async def test_a_statement_makes_one_trip_to_the_connection_thread(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with store.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # the connection is made and checked out
        trips = count_trips(monkeypatch)
        rows = (await conn.execute(text("SELECT name FROM sqlite_master"))).all()
        assert ("t",) in rows
        assert trips.count == 1  # SQLAlchemy's own adapter made four: cursor, execute, fetch, close


async def test_a_committed_transaction_is_not_rolled_back_again_when_it_is_returned(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's reset rolled back every connection it took back, a trip of its own after
    each commit: a fourth of a ledger write's trips."""
    async with store.engine.begin() as conn:  # the pool has its connection
        await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
    trips = count_trips(monkeypatch)
    async with store.engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('b')"))
    assert trips.count == 2  # the insert and the commit


async def test_a_connection_returned_inside_a_transaction_is_rolled_back(
    store: Store, tmp_path: Path
) -> None:
    """A transaction SQLAlchemy did not begin (so did not end) must not keep the store's
    write lock once its connection is back in the pool."""
    async with store.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert isinstance(driver, aiosqlite.Connection)
        await driver.execute("BEGIN IMMEDIATE")
        await driver.execute("INSERT INTO t (name) VALUES ('left open')")
        assert driver.in_transaction
    other = sqlite3.connect(tmp_path / "driver.db", timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # fails while any connection holds the write lock
        assert other.execute("SELECT count(*) FROM t").fetchone() == (0,)
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_statements_answer_as_sqlalchemy_expects(store: Store) -> None:
    async with store.engine.begin() as conn:
        inserted = await conn.execute(
            text("INSERT INTO t (name) VALUES (:name)"), [{"name": "a"}, {"name": "b"}]
        )
        assert inserted.rowcount == 2
        returned = await conn.execute(text("INSERT INTO t (name) VALUES ('c') RETURNING id, name"))
        assert returned.mappings().all() == [{"id": 3, "name": "c"}]
        updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id < 3"))
        assert updated.rowcount == 2
        result = await conn.execute(text("SELECT name FROM t ORDER BY id"))
        assert result.fetchone() == ("a!",)
        assert result.fetchmany(5) == [("b!",), ("c",)]
        assert result.fetchone() is None
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 3


async def test_errors_are_sqlalchemys_and_roll_back(store: Store) -> None:
    async with store.engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('x')"))
        with pytest.raises(IntegrityError, match="UNIQUE"):
            await conn.execute(text("INSERT INTO t (name) VALUES ('x')"))
        await conn.rollback()
        with pytest.raises(OperationalError, match="no such table"):
            await conn.execute(text("SELECT * FROM missing"))
    async with store.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0


async def test_write_transactions_take_turns_instead_of_meeting_sqlites_lock(
    store: Store,
) -> None:
    """SQLite puts a writer that finds the file locked to sleep for 1, 2, 5, 10... ms at a
    time; in one process, the next transaction waits its turn and starts when the last ends."""
    holding, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        async with store.engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES ('first')"))
            holding.set()
            await release.wait()
            order.append("first ends")

    async def second() -> None:
        await holding.wait()
        async with store.engine.begin() as conn:
            order.append("second begins")
            await conn.execute(text("INSERT INTO t (name) VALUES ('second')"))

    running = [asyncio.create_task(first()), asyncio.create_task(second())]
    await holding.wait()
    await asyncio.sleep(0.05)  # time for the second to begin, if it did not wait its turn
    release.set()
    await asyncio.gather(*running)
    assert order == ["first ends", "second begins"]
    async with store.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 2


@pytest.mark.parametrize("passing_over", [set(), {999_999}], ids=["plain", "passing over"])
async def test_a_claim_reads_its_events_after_its_transaction_has_let_go_of_the_store(
    tmp_path: Path,
    sample_events: list[Event],
    monkeypatch: pytest.MonkeyPatch,
    passing_over: set[int],
) -> None:
    """Parsing each claimed event inside the claim's transaction held SQLite's one write lock
    over it, and the consumer's next ledger write waited. A claim that passes over busy
    targets runs another way (on aiosqlite's thread), so it is checked too."""
    path = tmp_path / "claim.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        sub = await store.subscriptions.add(
            SubscriptionIn.model_validate(
                {"employers": ["Nordstrom"], "notify": ["json://127.0.0.1:9/hook"]}
            )
        )
        batch = sample_events[:3]
        await store.ledger.record(batch, [Match(sub.id, ev, sub.target_ids) for ev in batch])
        store_free_while_parsing: list[bool] = []
        parse = ledger_module.AnyEvent

        class Watching:
            def validate_python(self, payload: Any) -> Any:
                other = sqlite3.connect(path, timeout=0, isolation_level=None)
                try:
                    other.execute("BEGIN IMMEDIATE")  # fails while any writer holds the lock
                    other.execute("ROLLBACK")
                    store_free_while_parsing.append(True)
                except sqlite3.OperationalError:
                    store_free_while_parsing.append(False)
                finally:
                    other.close()
                return parse.validate_python(payload)

        monkeypatch.setattr(ledger_module, "AnyEvent", Watching())
        claimed = await store.ledger.claim(10, lease_s=60, skip_targets=passing_over)
    finally:
        await store.close()
    assert [c.event.id for c in claimed] == [ev.id for ev in batch]
    assert store_free_while_parsing == [True, True, True]
