"""Small units of SQLite work on the event loop's thread (service/store/small_work.py): they
never make the loop wait for another process's lock, and what they do is kept or undone whole,
as any transaction."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from service.store import Store
from service.store.engine import read, transaction
from tests.conftest import sqlite_store_with


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with sqlite_store_with(
        tmp_path / "small.db", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"
    ) as opened:
        yield opened


def add(name: str) -> Callable[[Connection], int]:
    def work(conn: Connection) -> int:
        conn.execute(text("INSERT INTO t (name) VALUES (:name)"), {"name": name})
        return int(conn.execute(text("SELECT count(*) FROM t")).scalar_one())

    return work


async def names(store: Store) -> list[str]:
    async with store.engine.connect() as conn:
        return [row[0] for row in await conn.execute(text("SELECT name FROM t ORDER BY id"))]


async def loop_stalls_during(task: asyncio.Task[int], seconds: float) -> float:
    """The longest the event loop went without turning while `task` ran, over `seconds`."""
    longest = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not task.done():
        before = time.monotonic()
        await asyncio.sleep(0.01)
        longest = max(longest, time.monotonic() - before - 0.01)
    return longest


async def test_a_write_runs_on_the_loops_thread_and_is_committed(store: Store) -> None:
    assert await transaction(store.engine, add("first")) == 1
    assert await names(store) == ["first"]


async def test_work_that_fails_leaves_nothing(store: Store) -> None:
    def fails(conn: Connection) -> None:
        conn.execute(text("INSERT INTO t (name) VALUES ('half')"))
        raise RuntimeError("the work's own error")

    with pytest.raises(RuntimeError, match="the work's own error"):
        await transaction(store.engine, fails)
    assert await names(store) == []


async def test_another_process_holding_the_lock_does_not_stop_the_loop(
    store: Store, tmp_path: Path
) -> None:
    """The CLI writing at the same moment: the write waits in a thread, the loop turns on,
    and the write lands once the lock is let go."""
    other = sqlite3.connect(tmp_path / "small.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (name) VALUES ('the cli')")
    try:
        waiting = asyncio.create_task(transaction(store.engine, add("the api")))
        stalled = await loop_stalls_during(waiting, 0.5)
        assert not waiting.done(), "the write went through while another process held the lock"
        assert stalled < 0.2, f"the loop stood still for {stalled:.2f} s"
    finally:
        other.execute("COMMIT")
        other.close()
    assert await asyncio.wait_for(waiting, 10) == 2
    assert await names(store) == ["the cli", "the api"]


async def test_a_lock_another_process_lets_go_of_at_once_is_waited_for_on_the_loops_thread(
    store: Store, tmp_path: Path
) -> None:
    """Another API process's create holds the lock for a moment: the write tries again on the
    loop's thread, not on the thread that waits out a lock in SQLite's own steps (1 ms, 2,
    5...)."""
    other = sqlite3.connect(tmp_path / "small.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (name) VALUES ('the other process')")
    asyncio.get_running_loop().call_later(0.0005, other.execute, "COMMIT")
    ran_in: list[int] = []

    def add_here(conn: Connection) -> int:
        ran_in.append(threading.get_ident())
        return add("this one")(conn)

    try:
        assert await asyncio.wait_for(transaction(store.engine, add_here), 10) == 2
    finally:
        other.close()
    assert ran_in[-1] == threading.get_ident()
    assert len(ran_in) > 1  # it did find the lock taken first
    assert await names(store) == ["the other process", "this one"]


async def test_a_read_goes_on_while_another_process_writes(store: Store, tmp_path: Path) -> None:
    await transaction(store.engine, add("committed"))
    other = sqlite3.connect(tmp_path / "small.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (name) VALUES ('not yet')")
    try:

        def all_names(conn: Connection) -> list[str]:
            return [row[0] for row in conn.execute(text("SELECT name FROM t ORDER BY id"))]

        assert await asyncio.wait_for(read(store.engine, all_names), 5) == ["committed"]
    finally:
        other.execute("ROLLBACK")
        other.close()
