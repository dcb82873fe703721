"""SQLite's WAL copied back into the store file by a thread of its own, not by the commit.

By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: that
commit copies every page in the WAL back into the file, and syncs it, before it returns. At
fan-out 100 every ledger write did so (a batch writes more than 1,000 pages), and the commits
were a fifth of the consumer's time while the second core sat idle.

Here the service's connections never checkpoint (`wal_autocheckpoint=0`). After each write
transaction a thread with a connection of its own runs a passive checkpoint, beside the next
write: it copies what is committed and never blocks a reader or a writer. A passive
checkpoint alone cannot keep the WAL small under steady writes, though: SQLite starts the WAL
over only when a writer begins and finds every frame copied, and a writer that always begins
while the last copy runs never does (tried: 390 MB in 6 s). So once the WAL passes
`limit_bytes`, the next write transaction first waits for a copy of everything, and then
starts the WAL over. A reader holding an old snapshot can keep the copy from finishing, so
the wait is bounded (`MAX_WAIT_S`): then that write goes on without it, and so do the writes
after it until a copy finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from pathlib import Path

import structlog

log = structlog.get_logger()

# How far the WAL grows before a write waits for it to be copied back and started over: a few
# fan-out-100 batches (13 MB each), so the wait comes once in several batches. It is also about
# what a crash leaves for SQLite to read at the next start.
WAL_LIMIT_BYTES = 64 * 1024 * 1024
# A write waits at most this long for the copy; a reader holding an old snapshot can keep it
# from finishing.
MAX_WAIT_S = 2.0
# Between two copies when nobody waits and the WAL is small: small writes (an alert's record,
# a subscription made through the API) would otherwise start a copy, and a sync of the file,
# for every few transactions, and copy the same busy pages again each time; ten a second cost
# 20% of the alerts delivered at 1,000 events/s and 10% of the API's creates.
MIN_GAP_S = 1.0
# ... unless the last copy found this much in the WAL (SQLite's own checkpoint is at 1,000
# pages): then the next write's pages are copied right after it, as at fan-out 100.
BUSY_BYTES = 4 * 1024 * 1024
# A copy this often even without writes, so the file catches up with writes made outside
# `begin()` (and an operator's copy of the file is recent).
IDLE_S = 1.0


class WalCheckpoints:
    """The checkpointing thread of one SQLite store file, started at its first write."""

    def __init__(self, path: Path, limit_bytes: int = WAL_LIMIT_BYTES) -> None:
        self.path = path
        self.limit_bytes = limit_bytes
        self._kick = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # Writes waiting for a full copy: (the copy they wait for, their loop, their future).
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._copies = 0  # copies begun; a waiter needs one begun after it asked
        self._thread: threading.Thread | None = None
        # The WAL's size as the last copy found it, in bytes.
        self._wal_bytes = 0
        # A write waited MAX_WAIT_S in vain: the next ones do not wait until a copy finishes.
        self._held_up = False
        # The last copy failed, or the thread could not open the file (said once, not at every
        # try); writes do not wait for copies meanwhile.
        self._failing = False
        self._page_bytes = 4096  # the store file's, read when the thread opens it

    @property
    def copies(self) -> int:
        """How many copies (passive checkpoints) the thread has begun."""
        return self._copies

    def written(self) -> None:
        """A write transaction committed: copy it back soon."""
        self._kick.set()

    async def make_room(self) -> None:
        """Before a write transaction: if the WAL has passed its limit, wait until all of it is
        copied back, so this write starts it over."""
        self._start()
        if self._wal_bytes <= self.limit_bytes or self._held_up or self._failing:
            return
        loop = asyncio.get_running_loop()
        copied: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiters.append((self._copies + 1, loop, copied))
        self._kick.set()
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.shield(copied), MAX_WAIT_S)
        except TimeoutError:
            self._held_up = True
            with self._lock:  # so the thread stops trying again at once for it
                self._waiters = [w for w in self._waiters if w[2] is not copied]
            log.warning(
                "store.wal_not_copied",
                wal_mb=round(self._wal_bytes / 2**20),
                waited_s=round(time.perf_counter() - started, 2),
                hint="a long read holds an old snapshot; writes go on without waiting, and the "
                "WAL grows until the read ends",
            )

    async def stop(self) -> None:
        """Stop the thread (the store's last connection to close copies what is left)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._kick.set()
        await asyncio.to_thread(thread.join)
        self._stopping.clear()
        self._release(up_to=None)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="jobwire-wal-checkpoints", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stopping.is_set():
                self._kick.wait(IDLE_S)
                self._kick.clear()
                if self._stopping.is_set():
                    break
                if conn is None:
                    # Opened again after a failure (e.g. out of file descriptors), so the
                    # thread never ends early and leaves the WAL to grow with nothing to copy
                    # it back.
                    conn = self._connect()
                    if conn is None:
                        self._stopping.wait(IDLE_S)
                        continue
                self._copy(conn)
                with self._lock:
                    waiting = bool(self._waiters)
                if waiting and not self._failing:
                    self._kick.set()  # not all copied yet: again, almost at once
                    self._stopping.wait(0.001)
                elif self._wal_bytes < BUSY_BYTES or self._failing:
                    self._stopping.wait(MIN_GAP_S)
        finally:
            if conn is not None:
                conn.close()

    def _connect(self) -> sqlite3.Connection | None:
        """The thread's own connection, or None (said once) if the file cannot be opened."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                self._page_bytes = conn.execute("PRAGMA page_size").fetchone()[0]
            except sqlite3.Error:
                conn.close()
                raise
        except sqlite3.Error as error:
            self._failed(error)
            return None
        return conn

    def _failed(self, error: sqlite3.Error) -> None:
        if not self._failing:
            log.warning(
                "store.wal_checkpoint_failed",
                error=str(error),
                hint="the WAL grows until a copy succeeds (tried again every second); writes "
                "do not wait for it meanwhile",
            )
        self._failing = True
        self._release(up_to=None)  # nothing to wait for

    def _copy(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._copies += 1
            this_copy = self._copies
        try:
            _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as error:  # e.g. the disk is full: try again later
            self._failed(error)
            return
        self._failing = False
        self._wal_bytes = max(frames, 0) * self._page_bytes
        if frames != copied:
            return
        self._held_up = False
        if self._release(up_to=this_copy):
            # A write was waiting for this copy, and it starts the WAL over now (a write
            # that began while the copy ran did not: the WAL goes on growing past it).
            self._wal_bytes = 0

    def _release(self, up_to: int | None) -> bool:
        """Wake the writes waiting for a full copy: those that asked before copy `up_to`
        began (it found everything copied), or all (None: stopping). Whether any was."""
        with self._lock:
            waiting = [w for w in self._waiters if up_to is None or w[0] <= up_to]
            self._waiters = [w for w in self._waiters if w not in waiting]
        for _, loop, copied in waiting:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits
                loop.call_soon_threadsafe(_resolve, copied)
        return bool(waiting)


def _resolve(copied: asyncio.Future[None]) -> None:
    if not copied.done():
        copied.set_result(None)
