"""How fast SQLite takes a batch's ledger rows, alone and beside a busy Python thread.

    python bench/bench_ledger_insert.py [--batches 12] [--events 500] [--fanout 100]

The ledger's own table and indexes (the newest migration, through `Store.open`), batches of
`events × fanout` rows as the pipeline writes them at fan-out 100, each in its transaction,
with `sqlite3` directly so nothing but the insert is measured:

1. `INSERT … SELECT FROM json_each(?)`, jobwire's statement (`service/store/bulk.py`): the rows
   as one JSON array SQLite reads itself. This is the baseline the others are compared with.
2. The same beside a thread that keeps the interpreter busy, as the consumer's decoding of the
   next batch does while one is written (consumers/kafka.py).
3. `executemany` of the same rows, the statement jobwire used before, alone and beside the
   busy thread: it takes the interpreter's lock back for every row it binds. The busy case
   gets a fiftieth of a batch: it crawls.
4. json_each again with `ix_deliveries_target` over every row, waiting ones too, as it was
   before migration 0015, to show what leaving them out of it saves.
5. json_each over three times as many batches, with the service's page cache
   (service/store/engine.py) and with SQLite's default (2 MB): the cache tells only once the
   ledger's indexes outgrow it.

Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.logs import configure_logging
from service.store import Store
from service.store.bulk import _SQLITE_DELIVERIES, _sqlite_time
from service.store.engine import _set_sqlite_pragmas
from service.store.schema import utcnow

EXECUTEMANY = (
    "INSERT INTO deliveries (target_id, event_kind, event_id, status, attempts, "
    "next_attempt_at, created_at, digest) VALUES (?, ?, ?, 'pending', 0, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)

Rows = list[tuple[int, str, str, None, bool]]
Insert = Callable[[sqlite3.Connection, Rows, str], int]


def fresh_store(directory: Path, name: str) -> sqlite3.Connection:
    """A new store file with the newest schema, opened as the service opens it."""
    path = directory / f"{name}.db"

    async def create() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{path}", auto_migrate=True)
        await store.close()

    asyncio.run(create())
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    _set_sqlite_pragmas(conn, None)  # as the service opens it: WAL, its page cache
    return conn


def batches(count: int, events: int, fanout: int, tag: str) -> Iterator[Rows]:
    for b in range(count):
        yield [
            (s + 1, "posting", f"{tag}-{b}-{e}", None, False)
            for e in range(events)
            for s in range(fanout)
        ]


@contextmanager
def busy_interpreter(on: bool) -> Iterator[None]:
    """A thread doing pure Python work for as long as the block runs."""
    running = on
    work = 0

    def spin() -> None:
        nonlocal work
        while running:
            for i in range(1000):
                work += i

    thread = threading.Thread(target=spin, daemon=True)
    if on:
        thread.start()
    try:
        yield
    finally:
        running = False
        if on:
            thread.join()


def by_json(conn: sqlite3.Connection, rows: Rows, now: str) -> int:
    return conn.execute(_SQLITE_DELIVERIES, (orjson.dumps(rows).decode(), now)).rowcount


def by_executemany(conn: sqlite3.Connection, rows: Rows, now: str) -> int:
    params = [(t, k, i, now, now, int(d)) for t, k, i, _, d in rows]
    return conn.executemany(EXECUTEMANY, params).rowcount


def measure(
    conn: sqlite3.Connection,
    insert: Insert,
    work: Iterator[Rows],
    busy: bool,
) -> tuple[float, int]:
    """(rows/s, rows) over the batches, each in its own transaction."""
    inserted, spent = 0, 0.0
    with busy_interpreter(busy):
        for rows in work:
            started = time.perf_counter()
            conn.execute("BEGIN")
            inserted += insert(conn, rows, _sqlite_time(utcnow()))
            conn.execute("COMMIT")
            spent += time.perf_counter() - started
    return inserted / spent, inserted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=12, help="batches per case (12)")
    parser.add_argument("--events", type=int, default=500, help="events per batch (500)")
    parser.add_argument("--fanout", type=int, default=100, help="ledger rows per event (100)")
    args = parser.parse_args()
    configure_logging(level="WARNING")  # not a line per store made
    per_batch = args.events * args.fanout
    print(
        f"ledger inserts on SQLite {sqlite3.sqlite_version}: {args.batches} batches of "
        f"{per_batch:,} rows ({args.events} events × fan-out {args.fanout}) per case"
    )
    small = max(1, args.events // 50)  # the crawling case gets a fiftieth of a batch
    full = (args.batches, args.events)
    long = (3 * args.batches, args.events)
    # (name, insert, beside a busy thread, (batches, events per batch), what the store is set)
    cases: list[tuple[str, Insert, bool, tuple[int, int], str | None]] = [
        ("json_each (jobwire), alone", by_json, False, full, None),
        ("json_each (jobwire), beside a busy thread", by_json, True, full, None),
        ("executemany (before), alone", by_executemany, False, full, None),
        (
            f"executemany (before), beside a busy thread ({small * args.fanout:,} rows)",
            by_executemany,
            True,
            (1, small),
            None,
        ),
        (
            "json_each, alone, waiting rows in ix_deliveries_target (before 0015)",
            by_json,
            False,
            full,
            "DROP INDEX ix_deliveries_target; "
            "CREATE INDEX ix_deliveries_target ON deliveries (target_id, status)",
        ),
        # The page cache tells only once the indexes outgrow it: a longer run of each.
        (f"json_each, alone, {3 * args.batches} batches", by_json, False, long, None),
        (
            f"json_each, alone, {3 * args.batches} batches, SQLite's default page cache (2 MB)",
            by_json,
            False,
            long,
            "PRAGMA cache_size=-2000",
        ),
    ]
    baseline: float | None = None
    with tempfile.TemporaryDirectory(prefix="jobwire-bench-ledger-") as directory:
        for n, (name, insert, busy, (count, events), setup) in enumerate(cases):
            conn = fresh_store(Path(directory), f"case{n}")
            if setup is not None:
                conn.executescript(setup)
            work = batches(count, events, args.fanout, f"case{n}")
            rate, rows = measure(conn, insert, work, busy)
            baseline = baseline or rate
            print(f"  {name:<70} {rate:>10,.0f} rows/s  {rate / baseline:5.2f}x  ({rows:,} rows)")


if __name__ == "__main__":
    main()
