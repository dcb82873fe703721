"""Opening a store: which databases, their connection settings, and the file's permissions."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, PoolResetState
from sqlalchemy.util import await_

from service.store import sqlite_driver
from service.store.errors import StoreUnavailable
from service.store.small_work import SmallWork
from service.store.wal_checkpoints import WalCheckpoints

SUPPORTED = "use sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER:PASSWORD@HOST/DB"

T = TypeVar("T")


# Pages a SQLite connection keeps in memory, in KiB. SQLite's default, 2 MB, holds too little of
# the ledger's indexes once it has a million rows or so: fan-out 100 in bench_pipeline ran
# 7-15% faster with this (runs alternated), and 16 MB did as well as 64 in a longer insert
# test. The memory is taken only as pages are read.
SQLITE_CACHE_KIB = 32_768


def _set_sqlite_pragmas(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry | None) -> None:
    # WAL lets the CLI write subscriptions while the service reads and writes the ledger;
    # the busy timeout makes a concurrent writer wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")  # negative: in KiB, not pages
    cursor.close()


def _leave_checkpoints_to_the_thread(
    dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry | None
) -> None:
    """The engine's WalCheckpoints copies the WAL back; a commit never does it itself."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _roll_back_if_open(
    dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry, state: PoolResetState
) -> None:
    """The pool's reset of a SQLite connection it takes back: roll back only a transaction
    SQLite says is open.

    SQLAlchemy's own reset rolls back every connection returned to the pool, even one whose
    transaction was just committed, and with aiosqlite each rollback is a trip to the
    connection's thread: one of the four a ledger write made, and one more in every other
    transaction. A connection returned inside a transaction (one SQLAlchemy did not begin, so
    did not end) is still rolled back, so its lock is never kept.
    """
    if state.terminate_only or not state.asyncio_safe:
        return  # being closed, which rolls back; or outside the event loop, where SQLAlchemy's
        # own reset does nothing either
    driver: Any = dbapi_connection.driver_connection
    if driver.in_transaction:
        dbapi_connection.rollback()


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite store, None for an in-memory one or another database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _create_private(path: Path) -> None:
    """Create the store's file readable by its owner only: it holds every subscriber's
    targets. SQLite gives the -wal and -shm files it makes beside it the same mode."""
    if path.exists() or not path.parent.is_dir():
        return  # an existing file keeps the mode its operator chose; a missing dir fails later
    with contextlib.suppress(FileExistsError):  # another process made it meanwhile
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _driver_options(url: str | URL) -> dict[str, Any]:
    """SQLite's connections come from service/store/sqlite_driver.py: one trip to a
    connection's thread per statement instead of four."""
    if make_url(url).get_backend_name() != "sqlite":
        return {}
    return {"connect_args": {"async_creator_fn": sqlite_driver.connect}}


class TurnTakingWrites(AsyncEngine):
    """A SQLite engine whose write transactions (`begin()`, `transaction()`) in this process
    take turns, and whose WAL a thread of its own copies back into the file
    (service/store/wal_checkpoints.py).

    SQLite lets one connection write at a time. Without turns, a connection that finds the
    file locked is put to sleep by SQLite's busy handler, for 1, 2, 5, 10... ms at a time,
    however soon the lock is free again: a claim of alerts that met the consumer's ledger
    write waited out those sleeps. Waiting here instead, the next writer starts the moment
    the last one ends. Other processes (the CLI) still meet the busy timeout.
    """

    def __init__(
        self,
        sync_engine: Engine,
        checkpoints: WalCheckpoints | None,
        small_work: SmallWork | None = None,
    ) -> None:
        super().__init__(sync_engine)
        self._turn = asyncio.Lock()
        self.checkpoints = checkpoints
        self.small_work = small_work

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self._turn_at_writing(), super().begin() as conn:
            yield conn

    async def small_transaction(self, work: Callable[[Connection], T]) -> T:
        """`work` as one transaction through `small_work`, in its turn."""
        assert self.small_work is not None, "a store file has small work; see open_engine"
        async with self._turn_at_writing():
            return await self.small_work.transaction(work)

    @contextlib.asynccontextmanager
    async def _turn_at_writing(self) -> AsyncIterator[None]:
        """This process's turn at writing, with room in the WAL; the checkpoint thread hears
        of a write that ended (not of one that failed)."""
        async with self._turn:
            if self.checkpoints is not None:
                await self.checkpoints.make_room()
            yield
            if self.checkpoints is not None:
                self.checkpoints.written()

    async def dispose(self, close: bool = True) -> None:
        if self.small_work is not None:
            self.small_work.close()
        if self.checkpoints is not None:
            await self.checkpoints.stop()
        await super().dispose(close)


async def transaction(
    engine: AsyncEngine, work: Callable[[Connection], T], *, small: bool = True
) -> T:
    """Run `work`, plain SQLAlchemy, as one transaction; commit if it returns.

    Small work (a few rows) on a SQLite file runs whole on the event loop's thread
    (service/store/small_work.py), and may run twice, the first time rolled back: it must only
    touch the store. Work that may read or write thousands of rows (`small=False`) runs on
    aiosqlite's thread instead, so the loop goes on meanwhile. On PostgreSQL each statement
    is its round trip to the server either way, and `work` runs as any transaction's
    statements do (`run_sync`).
    """
    if small and isinstance(engine, TurnTakingWrites) and engine.small_work is not None:
        return await engine.small_transaction(work)
    async with engine.begin() as conn:
        return await conn.run_sync(work)


async def read(engine: AsyncEngine, work: Callable[[Connection], T]) -> T:
    """Run `work`, which only reads a few rows, as `transaction` runs its work.

    On PostgreSQL without a transaction of its own (autocommit): asyncpg would otherwise send
    a BEGIN before the read and a ROLLBACK after it, two more round trips to the server.
    """
    if isinstance(engine, TurnTakingWrites) and engine.small_work is not None:
        return await engine.small_work.read(work)
    if engine.dialect.name == "postgresql":
        return await by_itself(engine, work)
    async with engine.connect() as conn:
        return await conn.run_sync(work)


async def by_itself(engine: AsyncEngine, work: Callable[[Connection], T]) -> T:
    """PostgreSQL: run `work`, one statement that is a whole transaction by itself, in
    autocommit: no BEGIN and COMMIT (or ROLLBACK) round trips around it."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        return await conn.run_sync(work)


# PostgreSQL connections a process keeps open, and how many more it may open at a peak (each
# closed again when it comes back). SQLAlchemy's default keeps 5: with the API's requests and
# the service's own work above that, every checkout beyond the fifth started a server process
# and ended it when returned, a connection per request (39–54% of a core in the pipeline
# benchmark's API row, and 671–739 creates a second against 863–866 with more kept). The peak
# stays at SQLAlchemy's 15 a process, so instances and API processes fit the server's
# `max_connections` as before.
POOL_KEPT = 10
POOL_PEAK = 15


def open_engine(url: str) -> AsyncEngine:
    on_sqlite = make_url(url).get_backend_name() == "sqlite"
    engine = create_async_engine(
        url,
        # PostgreSQL's connections are pinged before each use (`_ping`); a SQLite file has no
        # server to lose, and a ping was a round trip to its thread per checkout.
        pool_pre_ping=False,
        # SQLite's connections are rolled back on return only when they need it (below).
        pool_reset_on_return=None if on_sqlite else "rollback",
        **({} if on_sqlite else {"pool_size": POOL_KEPT, "max_overflow": POOL_PEAK - POOL_KEPT}),
        **_driver_options(url),
    )
    name = engine.dialect.name
    if name == "sqlite":
        file = sqlite_file(url)
        checkpoints = WalCheckpoints(file) if file is not None else None
        # An in-memory database is one per connection: small work's would be another.
        small_work = (
            SmallWork(make_url(url), [_set_sqlite_pragmas, _leave_checkpoints_to_the_thread])
            if file is not None
            else None
        )
        engine = TurnTakingWrites(engine.sync_engine, checkpoints, small_work)
        if file is not None:
            _create_private(file)
            event.listen(engine.sync_engine, "connect", _leave_checkpoints_to_the_thread)
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
        event.listen(engine.sync_engine, "reset", _roll_back_if_open)
    elif name == "postgresql":
        event.listen(engine.sync_engine, "checkout", _ping)
    else:
        raise StoreUnavailable(f"unsupported store {name!r}: {SUPPORTED}")
    return engine


def _ping(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry, __: object) -> None:
    """Before each use, find a PostgreSQL connection the server dropped (a restart, a network
    cut), so the pool makes a new one instead of failing the work given to it.

    SQLAlchemy's own ping (`pool_pre_ping`) sends an empty query inside a transaction of its
    own with asyncpg: BEGIN, the query, ROLLBACK, three round trips to the server for every
    connection taken from the pool, which a key's lookup and a subscription's create take
    once each. A query alone, outside a transaction, is one.
    """
    driver: Any = dbapi_connection.driver_connection
    try:
        await_(driver.execute("SELECT 1"))
    except Exception as exc:
        # Whatever the error (a closed socket, the server's "terminating connection", or
        # asyncpg's protocol left mid-state by it), the connection is not to be used; the
        # pool makes another, and a server that is really gone fails that connect, plainly.
        raise DisconnectionError(f"the connection was lost: {exc!r}") from exc


def migration_engine(url: URL) -> AsyncEngine:
    """An engine whose transactions really contain DDL on SQLite too.

    Python's sqlite3 module commits before DDL on its own; with its transaction handling off
    and an explicit BEGIN IMMEDIATE, a migration that fails half-way rolls back whole, and two
    processes upgrading one file take turns instead of interleaving.
    """
    engine = create_async_engine(url, poolclass=NullPool, **_driver_options(url))
    if engine.dialect.name != "sqlite":
        return engine

    def connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        _set_sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None

    def begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine.sync_engine, "connect", connect)
    event.listen(engine.sync_engine, "begin", begin)
    return engine


def insert(engine: AsyncEngine) -> Any:
    """The dialect's INSERT, which has ON CONFLICT DO NOTHING on both databases."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
