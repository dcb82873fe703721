"""A SQLite store's WAL is copied back into its file by a thread of its own, not by the commits
(service/store/wal_checkpoints.py): the file catches up soon after a write, the WAL stays
bounded under writes that never pause, a long read cannot stall writes, and the thread ends
with the store."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from service.store import Store
from service.store import wal_checkpoints as checkpoints_module
from service.store.wal_checkpoints import WalCheckpoints
from tests.conftest import sqlite_store_with

BLOB = 64 * 1024  # a row of this many bytes: 16 pages


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with sqlite_store_with(
        tmp_path / "wal.db", "CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)"
    ) as opened:
        yield opened


def checkpoints_of(store: Store) -> WalCheckpoints:
    found = getattr(store.engine, "checkpoints", None)
    assert isinstance(found, WalCheckpoints)
    return found


async def with_timings(store: Store, monkeypatch: pytest.MonkeyPatch, **values: float) -> None:
    """This test's timings for the checkpoint thread, and the store's thread started over (at
    the next write) so that it does not finish a wait begun with the old ones: the table's
    creation set it off, and its 1 s gap outlasted a whole test's writes now and then."""
    for name, value in values.items():
        monkeypatch.setattr(checkpoints_module, name, value)
    await checkpoints_of(store).stop()


async def write_blobs(store: Store, rows: int) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO blobs (body) VALUES (randomblob(:size))"),
            [{"size": BLOB}] * rows,
        )


async def test_the_file_catches_up_with_a_small_write_without_a_checkpoint_in_the_commit(
    store: Store, tmp_path: Path
) -> None:
    """Far below SQLite's own 1,000 pages, where a commit would have left it all in the WAL."""
    file = tmp_path / "wal.db"
    await asyncio.sleep(0.3)  # the table's creation is copied back first
    before = file.stat().st_size
    await write_blobs(store, 4)  # 64 pages
    for _ in range(150):  # up to 3 s
        if file.stat().st_size >= before + 4 * BLOB:
            break
        await asyncio.sleep(0.02)
    assert file.stat().st_size >= before + 4 * BLOB


async def test_the_wal_stays_bounded_under_writes_that_never_pause(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy beside each write never finds the WAL all copied while the next write has
    already begun, so the WAL would never start over; past its limit a write waits for it."""
    await with_timings(store, monkeypatch, MIN_GAP_S=0.0)
    checkpoints_of(store).limit_bytes = 512 * 1024
    wal = tmp_path / "wal.db-wal"
    largest = 0
    for _ in range(80):  # 10 MB in all
        await write_blobs(store, 2)
        largest = max(largest, wal.stat().st_size)
    # The limit, what was written while the last copy ran, and the write that found it full;
    # SQLite's own checkpoints would have let it reach 4 MB.
    assert largest < 2 * 1024 * 1024
    async with store.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM blobs"))).scalar() == 160


async def test_a_long_read_that_keeps_the_wal_from_being_copied_does_not_stall_writes(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await with_timings(store, monkeypatch, MAX_WAIT_S=0.3, MIN_GAP_S=0.0)
    checkpoints_of(store).limit_bytes = 256 * 1024
    await write_blobs(store, 2)
    reader = sqlite3.connect(tmp_path / "wal.db", isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM blobs").fetchone()  # holds this snapshot
        with capture_logs() as logs:
            started = time.perf_counter()
            for _ in range(20):
                await write_blobs(store, 2)
                await asyncio.sleep(0.01)  # for the thread to find the WAL past its limit
            took = time.perf_counter() - started
        # While the read still holds the copy up, the thread waits for writes instead of
        # trying again every millisecond for a write that gave up waiting.
        copies = checkpoints_of(store).copies
        await asyncio.sleep(0.3)
        assert checkpoints_of(store).copies - copies < 10
        reader.execute("COMMIT")
    finally:
        reader.close()
    # One write waited out MAX_WAIT_S, said why once, and the others did not wait.
    assert took < 1.5
    waits = [line for line in logs if line["event"] == "store.wal_not_copied"]
    assert len(waits) == 1
    assert "long read" in waits[0]["hint"]


async def test_small_writes_are_copied_back_at_most_about_once_a_second(store: Store) -> None:
    """A copy, and a sync of the file, every few small transactions cost a fifth of the
    alerts delivered at 1,000 events/s: while the WAL is small, copies wait their turn."""
    checkpoints = checkpoints_of(store)
    copies = checkpoints.copies
    for n in range(20):
        async with store.engine.begin() as conn:
            await conn.execute(text("INSERT INTO blobs (body) VALUES (:n)"), {"n": n})
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert checkpoints.copies - copies <= 2


async def test_the_thread_ends_with_the_store(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}")
    async with store.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    running = [t for t in threading.enumerate() if t.name == "jobwire-wal-checkpoints"]
    assert running
    await store.close()
    assert not any(t.is_alive() for t in running)


async def test_the_services_connections_leave_checkpoints_to_the_thread(store: Store) -> None:
    async with store.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 0


async def test_a_thread_that_cannot_open_the_file_says_so_and_tries_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to end with a traceback on stderr, and the WAL then grew with nothing to copy
    it back for as long as the service ran."""
    file = tmp_path / "wal.db"
    writer = sqlite3.connect(file, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)")
    refusals = 2

    def connect(
        path: Path, *, isolation_level: None, check_same_thread: bool
    ) -> sqlite3.Connection:
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise sqlite3.OperationalError("unable to open database file")
        return sqlite3.connect(
            path, isolation_level=isolation_level, check_same_thread=check_same_thread
        )

    monkeypatch.setattr(
        checkpoints_module, "sqlite3", SimpleNamespace(connect=connect, Error=sqlite3.Error)
    )
    monkeypatch.setattr(checkpoints_module, "IDLE_S", 0.05)
    monkeypatch.setattr(checkpoints_module, "MIN_GAP_S", 0.05)
    checkpoints = WalCheckpoints(file)
    try:
        with capture_logs() as logs:
            await checkpoints.make_room()  # starts the thread
            before = file.stat().st_size
            writer.execute("INSERT INTO blobs (body) VALUES (randomblob(?))", (4 * BLOB,))
            checkpoints.written()
            for _ in range(150):  # up to 3 s
                if file.stat().st_size >= before + 4 * BLOB:
                    break
                await asyncio.sleep(0.02)
        assert file.stat().st_size >= before + 4 * BLOB
        failures = [line for line in logs if line["event"] == "store.wal_checkpoint_failed"]
        assert len(failures) == 1  # said once, not at every try
        assert "unable to open" in failures[0]["error"]
    finally:
        await checkpoints.stop()
        writer.close()
