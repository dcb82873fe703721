"""How fast PostgreSQL takes the ledger in a database with a language's locale, before and
after migration 0009 (the ledger's and the events' keys compared byte by byte).

    python bench/bench_pg_locale.py [--rounds 3] [--batches 6]

Most PostgreSQL databases are made with a language's locale: the official `postgres` image's
and Debian's clusters default to `en_US.UTF-8`. Their text columns compare by that locale's
rules unless told otherwise, and the ledger's indexes compare an event's kind and id, and an
alert's status, for every row they take. The devstack server (and so bench_pipeline.py) is
made with `--locale=C`, where that costs nothing.

Three databases on one throwaway server (devstack/postgres.py), each written through the
pipeline's own write (`Ledger.record`) in batches of 500 postings, at fan-out 100 (50,000
ledger rows a batch) and fan-out 1:

1. locale C, newest revision: the baseline, as the devstack server has it;
2. a language's locale at revision 0008, before the keys had collation "C";
3. the same locale at the newest revision.

The language's locale is the C library's `en_US.UTF-8` when the machine has it (what the
`postgres` image uses), else ICU's `en-US`, which Debian's PostgreSQL always has. The rounds
alternate the databases. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_matching import World
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from consumers.events import Event
from devstack.postgres import SUPERUSER, PostgresServer, running_postgres
from service.store import Match, Store, migrate

BATCH_EVENTS = 500
FANOUTS = (100, 1)
BEFORE = "0008"  # the last revision whose keys compare by the database's locale


async def create_databases(server: PostgresServer) -> str:
    """The three databases; returns which language's locale they got."""
    admin = create_async_engine(
        f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{server.port}/postgres",
        isolation_level="AUTOCOMMIT",
    )
    try:
        async with admin.connect() as conn:
            await conn.execute(text("CREATE DATABASE bench_c TEMPLATE template0 OWNER jobwire"))
            try:
                locale = "libc en_US.UTF-8"
                for name in ("bench_before", "bench_after"):
                    await conn.execute(
                        text(
                            f"CREATE DATABASE {name} TEMPLATE template0 "
                            "LOCALE 'en_US.UTF-8' OWNER jobwire"
                        )
                    )
            except DBAPIError:  # the machine has no en_US.UTF-8 (`locale -a`)
                await conn.execute(text("DROP DATABASE IF EXISTS bench_before"))
                locale = "ICU en-US (this machine has no en_US.UTF-8)"
                for name in ("bench_before", "bench_after"):
                    await conn.execute(
                        text(
                            f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu "
                            "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8' OWNER jobwire"
                        )
                    )
    finally:
        await admin.dispose()
    return locale


# Columns added after BEFORE that today's ledger write fills in: given to the "before" store
# by hand, so it takes the same write with only its keys' collation changed.
LATER_COLUMNS = ("ALTER TABLE events ADD COLUMN kafka_timestamp_ms bigint",)  # 0011


async def open_at(url: str, revision: str) -> Store:
    """A store migrated to `revision`, without the check that it is the newest."""
    engine = Store.connect(url)
    await migrate.upgrade(engine, revision)
    if revision != "head":
        async with engine.begin() as conn:
            for statement in LATER_COLUMNS:
                await conn.execute(text(statement))
    return Store(engine)


async def rows_per_second(
    store: Store, events: list[Event], fanout: int, batches: int, tag: str
) -> float:
    targets = list(range(1, fanout + 1))
    written = 0
    took = 0.0
    for n in range(batches):
        batch = [e.model_copy(update={"id": f"{tag}-{n}-{e.id}"}) for e in events]
        matches = [Match("s" * 32, e, targets) for e in batch]
        started = time.perf_counter()
        await store.ledger.record(batch, matches)
        took += time.perf_counter() - started
        written += len(batch) * fanout
    return written / took


async def run(server: PostgresServer, rounds: int, batches: int) -> None:
    locale = await create_databases(server)
    base = server.url.rsplit("/", 1)[0]
    stores = {
        "C, newest (baseline)": await open_at(f"{base}/bench_c", "head"),
        f"{locale.split(' (')[0]}, {BEFORE} (before)": await open_at(
            f"{base}/bench_before", BEFORE
        ),
        f"{locale.split(' (')[0]}, newest (after)": await open_at(f"{base}/bench_after", "head"),
    }
    print(f"PostgreSQL at {server.url.split('@')[-1]}; the language's locale: {locale}")
    events = World().postings(BATCH_EVENTS, seed=5)
    found: dict[tuple[str, int], list[float]] = {}
    try:
        for store in stores.values():  # a first batch each, so every cache is warm
            await rows_per_second(store, events, 100, 1, "warm")
        for round_ in range(rounds):
            for fanout in FANOUTS:
                for name, store in stores.items():
                    rate = await rows_per_second(
                        store, events, fanout, batches, f"r{round_}f{fanout}"
                    )
                    found.setdefault((name, fanout), []).append(rate)
                    label = f"round {round_ + 1}, fan-out {fanout:>3}, {name}"
                    print(f"  {label:<58} {rate:>10,.0f} rows/s")
    finally:
        for store in stores.values():
            await store.close()
    print()
    print(f"  {'database':<36} {'fan-out':>7} {'rows/s (median)':>16} {'× baseline':>11}")
    for fanout in FANOUTS:
        baseline = statistics.median(found[(next(iter(stores)), fanout)])
        for name in stores:
            median = statistics.median(found[(name, fanout)])
            print(f"  {name:<36} {fanout:>7} {median:>16,.0f} {median / baseline:>10.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the databases")
    parser.add_argument("--batches", type=int, default=6, help="batches of 500 events a measure")
    args = parser.parse_args()
    with running_postgres() as server:
        asyncio.run(run(server, args.rounds, args.batches))


if __name__ == "__main__":
    main()
