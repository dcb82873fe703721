"""Bulk inserts for the hot path: a batch's events and its ledger rows, one statement each.

Every batch writes all its events and one ledger row per match and target: at fan-out 100 that
is 50,000 rows a batch. SQLAlchemy's per-row parameter processing (binding each datetime and
JSON value, building a dict per row) cost more than the database's own insert, so these rows
skip it: SQLite gets one `INSERT … SELECT FROM json_each(?)` of the rows as one JSON array
(datetimes as the text SQLAlchemy itself stores), PostgreSQL one `INSERT … SELECT FROM
unnest(arrays)`. Both skip rows already there (a batch Kafka delivers again) and count the rows
that are new.

Why one JSON array on SQLite rather than `executemany`: the write runs in aiosqlite's thread
while the consumer decodes the next batch in the main one (consumers/kafka.py), and
`executemany` takes the interpreter's lock back for every row it binds, so each row waited for
the decoding thread to let go of it; the two threads ran one after the other, and slower than
alone. SQLite reads the array itself, in C, with the lock released for the whole statement:
beside a busy Python thread, about 217,000 ledger rows/s against about 200
(bench/bench_ledger_insert.py).

On PostgreSQL the ledger rows of events new to the store go in by `COPY`, at twice the rate
of that `INSERT` (bench/bench_pipeline.py, fan-out 100): an event's rows are written in the
same transaction as the event, so an event the store did not have has none yet. `COPY` cannot
skip a row that is there, so it runs under a savepoint, and in the one case where rows outlive
their event (retention removed an old event whose alerts were sent, and Kafka delivered it
again), it fails and those rows take the `INSERT` that skips them.

A large batch's `COPY` is split over two connections, each with its own server process: one
took a fan-out-100 batch at 85% of a core while the other core sat mostly idle. The second
connection's half commits only after the batch's own transaction, the events included, so no
ledger row is ever committed without its event (`Ledger.write`); if that second commit fails,
the batch is recorded again, and the `INSERT` fills in the missing half.

A smaller batch (fan-out 1: its events take longer than its rows) does the reverse: its
events go in and commit on a second connection while its rows' `COPY` runs on the first,
which takes every row as new and falls back to the `INSERT` when one is not
(`Ledger._write_beside`).

A batch of fewer than `COPY_ROWS` rows (an event or a few, as at ordinary rates) takes the
`INSERT` in the batch's one transaction, after its events: the savepoint, the `COPY`'s own
round trips and a second connection cost more than so few rows. At 100 events/s the
publish → alert p99 on PostgreSQL went from 15.3 to 12.6 ms (alternated three times), at
1,000 events/s from 146 to 113 ms.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# Rows of new events from which PostgreSQL's `COPY` is split over two connections: a
# fan-out-100 batch (50,000), never the few hundred of fan-out 1, where the second
# transaction would cost more than it saves.
SPLIT_ROWS = 20_000
_EVENT_ID = operator.itemgetter(2)

# Fewer ledger rows than this (PostgreSQL) go in by one `INSERT` in the batch's one
# transaction: for a small batch (an event or a few, as at ordinary rates) a `COPY` under its
# savepoint, and the events on a second connection beside it, are more round trips than the
# rows are work.
COPY_ROWS = 100

# The second half of a split `COPY` is due this much after the first. Every new row is due
# when it is written, and rows of one key in `ix_deliveries_due` go to one place in it, where
# the two halves' server processes waited for each other's page (a seventh of their time
# at fan-out 100); a microsecond apart, each half has a place of its own (1.09× for the
# `COPY`s alone). The first half holds the batch's earlier events, so they are claimed first.
HALF_APART = timedelta(microseconds=1)

A = TypeVar("A")
B = TypeVar("B")

# (kind, id, payload as JSON text, received_at, search words, Kafka timestamp in ms or None)
EventRow = tuple[str, str, str, datetime, str, int | None]
# (target_id, event kind, event id, when due (None: now), digest); the target names the
# subscription.
DeliveryRow = tuple[int, str, str, datetime | None, bool]

# `WHERE 1`: SQLite needs a WHERE in an INSERT … SELECT that has an ON CONFLICT clause.
_SQLITE_EVENTS = (
    "INSERT INTO events (kind, id, payload, received_at, search, kafka_timestamp_ms) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
    "json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), "
    "json_extract(value, '$[5]') "
    "FROM json_each(?) WHERE 1 ON CONFLICT DO NOTHING"
)
_SQLITE_DELIVERIES = (
    "INSERT INTO deliveries (target_id, event_kind, event_id, status, attempts, "
    "next_attempt_at, created_at, digest) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
    "json_extract(value, '$[2]'), 'pending', 0, "
    "coalesce(json_extract(value, '$[3]'), ?2), ?2, json_extract(value, '$[4]') "
    "FROM json_each(?1) WHERE 1 ON CONFLICT DO NOTHING"
)
_POSTGRES_EVENTS = text(
    "INSERT INTO events (kind, id, payload, received_at, search, kafka_timestamp_ms) "
    "SELECT * FROM unnest(CAST(:kind AS varchar[]), CAST(:id AS varchar[]), "
    "CAST(:payload AS json[]), CAST(:received_at AS timestamp[]), CAST(:search AS text[]), "
    "CAST(:kafka_ms AS bigint[])) "
    "ON CONFLICT DO NOTHING RETURNING kind, id"
)
_COPY_COLUMNS = (
    "target_id",
    "event_kind",
    "event_id",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
    "digest",
)
_POSTGRES_DELIVERIES = text(
    "INSERT INTO deliveries (target_id, event_kind, event_id, status, attempts, "
    "next_attempt_at, created_at, digest) "
    "SELECT t, k, i, 'pending', 0, n, c, d FROM unnest(CAST(:t AS integer[]), "
    "CAST(:k AS varchar[]), CAST(:i AS varchar[]), CAST(:n AS timestamp[]), "
    "CAST(:c AS timestamp[]), CAST(:d AS boolean[])) "
    "AS u(t, k, i, n, c, d) ON CONFLICT DO NOTHING"
)


def _sqlite_time(moment: datetime) -> str:
    """A datetime as SQLAlchemy's SQLite DATETIME stores it, so both compare as text."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


async def insert_events(conn: AsyncConnection, rows: Sequence[EventRow]) -> set[tuple[str, str]]:
    """Insert a batch's events; returns the (kind, id) of those new to the store, where the
    database says (PostgreSQL; an empty set on SQLite, which does not need it)."""
    if not rows:
        return set()
    if conn.dialect.name == "sqlite":
        times = {at: _sqlite_time(at) for at in {row[3] for row in rows}}  # one or two a batch
        rows_json = orjson.dumps([(k, i, p, times[at], s, ms) for k, i, p, at, s, ms in rows])
        await conn.exec_driver_sql(_SQLITE_EVENTS, (rows_json.decode(),))
        return set()
    kinds, ids, payloads, received, search, kafka_ms = zip(*rows, strict=True)
    result = await conn.execute(
        _POSTGRES_EVENTS,
        {
            "kind": list(kinds),
            "id": list(ids),
            "payload": list(payloads),
            "received_at": list(received),
            "search": list(search),
            "kafka_ms": list(kafka_ms),
        },
    )
    return {(kind, event_id) for kind, event_id in result}


def wants_copy(rows: Sequence[DeliveryRow]) -> bool:
    """Whether a batch's rows are many enough for PostgreSQL's `COPY` (`COPY_ROWS`)."""
    return len(rows) >= COPY_ROWS


def wants_helper(dialect: str, rows: Sequence[DeliveryRow]) -> bool:
    """Whether a batch's write should bring a second connection for half of its `COPY`: on
    PostgreSQL, for a batch of at least SPLIT_ROWS rows (fewer may turn out new to the store;
    then the helper is not used)."""
    return dialect == "postgresql" and len(rows) >= SPLIT_ROWS


async def insert_deliveries(
    conn: AsyncConnection,
    rows: Sequence[DeliveryRow],
    now: datetime,
    new_events: set[tuple[str, str]],
    helper: AsyncConnection | None = None,
    *,
    every_event_new: bool = False,
) -> int:
    """Insert ledger rows created `now`; returns how many were new. `new_events`: the events
    `insert_events` found new to the store, in this transaction; `every_event_new`: they are
    all of the rows' events (as they are unless Kafka delivered the batch again), so no row
    need be looked up in them. `helper` (PostgreSQL): a second connection in a transaction
    of its own, which the caller commits after this one, for half of a large batch's
    `COPY`."""
    if not rows:
        return 0
    if conn.dialect.name == "sqlite":
        if any(row[3] is not None for row in rows):  # a digest's or quiet hours' rows
            rows_json = orjson.dumps(
                [
                    (t, k, i, None if due is None else _sqlite_time(due), d)
                    for t, k, i, due, d in rows
                ]
            )
        else:
            rows_json = orjson.dumps(rows)
        result = await conn.exec_driver_sql(
            _SQLITE_DELIVERIES, (rows_json.decode(), _sqlite_time(now))
        )
        return int(result.rowcount)  # the rows it inserted: the new ones
    copied = 0
    # The row by row looks below take a fan-out-100 batch 7 ms, paid while the server waits
    # for its `COPY`.
    if not wants_copy(rows):
        fresh: Sequence[DeliveryRow] = []
    elif every_event_new:
        fresh = rows
    else:
        fresh = [row for row in rows if (row[1], row[2]) in new_events]
    if fresh:
        try:
            copied = await _copy_fresh(conn, fresh, now, helper)
        except asyncpg.UniqueViolationError:
            pass  # rows outlived their event: every row takes the INSERT below
        else:
            rows = [] if fresh is rows else [r for r in rows if (r[1], r[2]) not in new_events]
    return copied + await _insert_deliveries_postgres(conn, rows, now)


async def _copy_fresh(
    conn: AsyncConnection,
    rows: Sequence[DeliveryRow],
    now: datetime,
    helper: AsyncConnection | None,
) -> int:
    """`COPY` the rows, under a savepoint; a large batch in two halves at once, one on
    `helper`. Either half failing undoes both."""
    if helper is None or len(rows) < SPLIT_ROWS:
        async with conn.begin_nested():
            return await _copy_deliveries(conn, rows, now, now)
    mine, other = halves(rows)
    async with conn.begin_nested(), helper.begin_nested():
        copied = await both_to_their_end(
            _copy_deliveries(conn, mine, now, now),
            _copy_deliveries(helper, other, now, now + HALF_APART),
        )
    return sum(copied)


def halves(rows: Sequence[DeliveryRow]) -> tuple[Sequence[DeliveryRow], Sequence[DeliveryRow]]:
    """A batch's rows in two halves with no event in both: a row that is in the batch twice
    stays in one half, where the `COPY` fails on it as one would, instead of waiting for the
    other half's transaction to end.

    The pipeline builds an event's rows together, so the cut is at the end of the event that
    spans the middle, checked by event id (two looks at a set: 1 ms at fan-out 100, against
    9 ms for a look per row); rows of an event in both halves (it came twice, or they were
    built in another order) are split event by event instead.
    """
    cut = len(rows) // 2
    while 0 < cut < len(rows) and rows[cut][1:3] == rows[cut - 1][1:3]:
        cut += 1
    mine, other = rows[:cut], rows[cut:]
    if set(map(_EVENT_ID, mine)).isdisjoint(map(_EVENT_ID, other)):
        return mine, other
    events = list(dict.fromkeys((kind, event_id) for _, kind, event_id, _, _ in rows))
    theirs = set(events[len(events) // 2 :])
    return (
        [row for row in rows if (row[1], row[2]) not in theirs],
        [row for row in rows if (row[1], row[2]) in theirs],
    )


async def both_to_their_end(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Two writes at once, on connections of their own: both run to their end, then the first
    failure is raised. A connection still in its `COPY` cannot roll back, so neither's
    transaction may be undone while the other is still running."""
    one, two = await asyncio.gather(first, second, return_exceptions=True)
    if isinstance(one, BaseException):
        raise one
    if isinstance(two, BaseException):
        raise two
    return one, two


async def _copy_deliveries(
    conn: AsyncConnection, rows: Sequence[DeliveryRow], now: datetime, due_now: datetime
) -> int:
    """`COPY` rows created `now`; those due at once are due `due_now`."""
    if not rows:
        return 0
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    status: str = await raw.copy_records_to_table(
        "deliveries",
        records=[
            (t, k, i, "pending", 0, due_now if due is None else due, now, digest)
            for t, k, i, due, digest in rows
        ],
        columns=_COPY_COLUMNS,
    )
    return int(status.rsplit(" ", 1)[-1])  # "COPY 50000"


async def _insert_deliveries_postgres(
    conn: AsyncConnection, rows: Sequence[DeliveryRow], now: datetime
) -> int:
    if not rows:
        return 0
    target_ids, kinds, ids, dues, digests = zip(*rows, strict=True)
    result = await conn.execute(
        _POSTGRES_DELIVERIES,
        {
            "t": list(target_ids),
            "k": list(kinds),
            "i": list(ids),
            "n": [now if due is None else due for due in dues],
            "c": [now] * len(rows),
            "d": list(digests),
        },
    )
    return int(result.rowcount)
