"""aiosqlite with one trip to the connection's thread per statement, where SQLAlchemy made four.

aiosqlite runs each SQLite connection in a thread of its own, and every call crosses to it
and back: a queue, a thread woken, the interpreter's lock handed over and back, a wake-up of
the event loop. SQLAlchemy's adapter makes four such calls per statement: a cursor, execute,
fetch the rows, close the cursor. Creating a subscription (BEGIN IMMEDIATE, a count, two
inserts, COMMIT) took 16 trips and 3 ms of CPU for 0.5 ms of SQLite's own work, and each
delivery's claim and record pay the same toll.

`OneTripCursor` does those four steps in the thread at once and keeps what SQLAlchemy reads
afterwards (the rows, their description, the row count): one trip per statement. It is
plugged in through the `async_creator_fn` argument SQLAlchemy's aiosqlite dialect takes
(see `connect_args` in service/store/engine.py), so the dialect, its type handling and its
error translation stay SQLAlchemy's own.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import aiosqlite

Description = tuple[tuple[str, None, None, None, None, None, None], ...] | None
Outcome = tuple[Description, int, int | None, list[Any]]


def _execute(conn: sqlite3.Connection, sql: str, parameters: Any) -> Outcome:
    """In the connection's thread: run one statement and take everything it returns."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _execute_many(conn: sqlite3.Connection, sql: str, parameters: Iterable[Any]) -> Outcome:
    cursor = conn.cursor()
    try:
        cursor.executemany(sql, parameters)
        return cursor.description, cursor.rowcount, cursor.lastrowid, []
    finally:
        cursor.close()


class OneTripCursor:
    """The part of aiosqlite's cursor SQLAlchemy uses, with the rows taken at execute."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self.description: Description = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1
        self._rows: deque[Any] = deque()

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = None) -> OneTripCursor:
        await self._trip(_execute, sql, () if parameters is None else parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneTripCursor:
        await self._trip(_execute_many, sql, parameters)
        return self

    async def _trip(self, work: Callable[..., Outcome], sql: str, parameters: Any) -> None:
        """Run `work` in the connection's thread and keep what it returns."""
        connection = self._connection
        outcome: Outcome = await connection._execute(  # type: ignore[no-untyped-call]
            work, connection._conn, sql, parameters
        )
        self.description, self.rowcount, self.lastrowid, rows = outcome
        self._rows = deque(rows)

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        count = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]

    async def fetchall(self) -> Sequence[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors make one trip to its thread per statement."""

    # aiosqlite's own cursor() is a coroutine; SQLAlchemy only enters what it returns
    # (`await cursor.__aenter__()`), which this cursor answers without a trip.
    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)


def connect(database: str, **kwargs: Any) -> OneTripConnection:
    """As `aiosqlite.connect`, for SQLAlchemy's `async_creator_fn`."""
    connection = OneTripConnection(partial(sqlite3.connect, database, **kwargs), 64)
    # SQLAlchemy's dialect does this for the connections it makes itself: a connection left
    # open at exit must not keep the process alive.
    connection._thread.daemon = True
    return connection
