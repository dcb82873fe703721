"""Small units of SQLite work run whole on the event loop's own thread.

Through aiosqlite each statement is a trip to its connection's thread and back. A
subscription's create (BEGIN IMMEDIATE, a count, two inserts, COMMIT) was five trips and
1.5-1.7 ms of CPU, and a key's lookup, done for every API request, 0.47 ms for one statement.
The creates also took turns at SQLite's write lock, which each kept across its five trips, so
the event loop idled while the next create waited (bench/bench_api.py: 213-220 creates a
second). Run whole in a thread of their own, the work's Python (SQLAlchemy's, for each
statement) and the loop's took turns at the interpreter's lock, and a create still cost
3.3-3.5 ms of the server's CPU (305 a second). On the loop's thread: 2.7 ms (378 a second),
and a key's lookup 0.08 ms.

What SQLite does for such work is a few rows' worth, tens of microseconds. What keeps it from
making the loop wait longer is that this connection never waits for a lock: its busy timeout
is 0. Within the process, writes take turns (TurnTakingWrites), so the write lock is free when
a write's turn comes, and in WAL mode a read does not wait for writers. Work that still finds
the file locked is rolled back. Another process's write is usually as short as this one's (an
API process's create holds the lock about 0.3 ms; service/web/processes.py), so the work is
tried here again after a short pause or two, the loop turning meanwhile (`RETRY_PAUSES_S`).
Only then does it run on a connection in a thread of its own, which waits out the lock as
every other connection does (the CLI's long write, a backup): SQLite's own wait looks again
after 1, 2, 5, 10 ms and so on, and with two API processes creating at once, going there at
the first meeting left a third of the two cores idle. So work given here may run more than
once, each time but the last rolled back: it must only touch the store.

What runs here (through `transaction` and `read` in service/store/engine.py): a subscription's
create, a key's lookup, a claim of due alerts that passes over no target, and the outcomes of
sends, row by row. A claim that passes over busy targets, and an outcome that changes every
waiting alert of a target, may read or write thousands of rows, so they stay on aiosqlite's
thread. Claims and outcomes here gave, alternated twice through Kafka: webhooks 1.08-1.12x,
the p99 at 100 events/s 0.70x, the p50 at 1,000 events/s 0.79x.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

T = TypeVar("T")
Listener = Callable[..., None]

# SQLite's primary result codes for "another connection holds a lock this one needs".
_LOCKED = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# Pauses after which work that found the file locked is tried on the loop's thread again,
# before it goes to the thread that waits out the lock.
RETRY_PAUSES_S = (0.0003, 0.001, 0.002)


def _never_wait(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


def _found_locked(error: OperationalError) -> bool:
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _LOCKED


def _whole(
    opened: Callable[[], AbstractContextManager[Connection]], work: Callable[[Connection], T]
) -> T:
    with opened() as conn:
        return work(conn)


class SmallWork:
    """A SQLite file's connection for small units of work on the loop's thread, and one in a
    thread of its own for when the file is locked."""

    def __init__(self, url: URL, on_connect: Sequence[Listener]) -> None:
        # The same file through the standard library's driver: SQLAlchemy's SQLite dialects
        # share their SQL and their types, so a statement means the same here as through
        # aiosqlite.
        sync_url = url.set(drivername="sqlite")
        self._here = create_engine(sync_url, pool_size=1, max_overflow=0)
        self._away = create_engine(sync_url, pool_size=1, max_overflow=0)
        for engine in (self._here, self._away):
            for listener in on_connect:
                event.listen(engine, "connect", listener)
        event.listen(self._here, "connect", _never_wait)  # after the listeners' busy timeout
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="jobwire-sqlite-locked")

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        """`work` in one transaction, committed if it returns, rolled back if it raises."""
        return await self._here_or_away(lambda engine: _whole(engine.begin, work))

    async def read(self, work: Callable[[Connection], T]) -> T:
        """`work`, which only reads."""
        return await self._here_or_away(lambda engine: _whole(engine.connect, work))

    async def _here_or_away(self, run: Callable[[Engine], T]) -> T:
        """`run` on the loop's connection, again after each of RETRY_PAUSES_S while it finds
        the file locked; then on the thread's."""
        for pause in (*RETRY_PAUSES_S, None):
            try:
                return run(self._here)
            except OperationalError as error:
                if not _found_locked(error):
                    raise
            if pause is not None:
                await asyncio.sleep(pause)
        done = asyncio.get_running_loop().run_in_executor(self._thread, run, self._away)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # The work goes on in its thread; a write's turn at writing lasts until it has
            # ended, so the next writer does not meet its lock.
            await asyncio.wait([done])
            raise

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._here.dispose()
        self._away.dispose()
