"""The store's data lifecycle: the recent-events preview, and ingest while retention prunes.

    python bench/bench_store.py [--events 100000] [--stores sqlite,postgresql] [--seconds 5]

1. Preview: 100,000 events (19 postings to 1 article, as the feeds run) received over the last
   7 days; "which of them would this subscription match" for subscriptions of each shape, as
   the web preview and `jobwire match --recent` ask it (`service.preview.recent_matches`). The
   baseline, measured in the same run, reads every event of the window and runs the same
   matcher over all of them (what the preview would do without the `search` words).
2. Retention: batches of 500 events recorded through `Ledger.record` (the pipeline's write) for
   a few seconds, alone and then while `Retention.prune` deletes 100,000 old alerts and their
   events in batches beside it.

PostgreSQL is a throwaway server from devstack/postgres.py. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_matching import World
from sqlalchemy import select, update

from config.settings import RetentionSettings
from consumers.events import AnyEvent, Event
from service.matching import Matcher, search_text
from service.preview import recent_matches
from service.store import Match, Store, utcnow
from service.store.retention import Retention
from service.store.schema import deliveries, events
from service.subscriptions import Criteria

WINDOW = timedelta(days=7)


async def fill(store: Store, world: World, count: int) -> None:
    """`count` events received at random moments of the last 7 days."""
    rng = random.Random(5)
    articles = count // 20
    made: list[Event] = [*world.postings(count - articles), *world.articles(articles)]
    now = utcnow()
    started = time.perf_counter()
    for start in range(0, len(made), 2000):
        rows = [
            {
                "kind": e.kind,
                "id": e.id,
                "payload": e.model_dump(mode="json"),
                "received_at": now - WINDOW * rng.random(),
                "search": search_text(e),
            }
            for e in made[start : start + 2000]
        ]
        async with store.engine.begin() as conn:
            await conn.execute(events.insert(), rows)
    print(f"  stored {len(made):,} events in {time.perf_counter() - started:.1f} s")


async def scan(store: Store, criteria: Criteria) -> list[Event]:
    """The baseline: every event of the window through the same one-subscription matcher."""
    since = utcnow() - WINDOW
    async with store.engine.connect() as conn:
        payloads = (
            (await conn.execute(select(events.c.payload).where(events.c.received_at >= since)))
            .scalars()
            .all()
        )
    matcher = Matcher()
    matcher.add("s", criteria)
    found = [AnyEvent.validate_python(p) for p in payloads]
    return [e for e in found if matcher.match(e)]


async def timed(run: object, repeat: int = 5) -> tuple[float, int]:
    times, found = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        found = len(await run())  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times), found


async def preview(store: Store, world: World) -> None:
    rng = random.Random(11)
    shapes = {
        "employer": Criteria(employers=[rng.choice(world.employers)]),
        "employer + city": Criteria(
            employers=[rng.choice(world.employers)], cities=[rng.choice(world.cities)]
        ),
        "city": Criteria(cities=[rng.choice(world.cities)]),
        "title words": Criteria(titles=[" ".join(rng.sample(world_vocabulary(), 2))]),
        "employer, articles": Criteria(employers=[rng.choice(world.employers)], kinds=["article"]),
    }
    print(f"  {'subscription':<20} {'preview':>10} {'full scan':>10} {'ratio':>8} {'matches':>8}")
    for name, criteria in shapes.items():
        fast, found = await timed(lambda c=criteria: recent_matches(store, c, 7))
        slow, expected = await timed(lambda c=criteria: scan(store, c), repeat=1)
        assert found == expected, (name, found, expected)  # a wrong fast answer is no answer
        print(
            f"  {name:<20} {fast * 1000:>8.1f}ms {slow * 1000:>8.0f}ms "
            f"{slow / fast:>7.0f}× {found:>8}"
        )


def world_vocabulary() -> list[str]:
    from bench_matching import VOCABULARY

    return VOCABULARY


async def ingest(store: Store, world: World, seconds: float, tag: str) -> float:
    """Events per second recorded through the pipeline's write, one match per event."""
    batch_events = world.postings(500, seed=hash(tag) % 1000)
    recorded = 0
    started = time.perf_counter()
    round_ = 0
    while time.perf_counter() - started < seconds:
        batch = [e.model_copy(update={"id": f"{tag}-{round_}-{e.id}"}) for e in batch_events]
        await store.ledger.record(batch, [Match("s" * 32, e, [1]) for e in batch])
        recorded += len(batch)
        round_ += 1
    return recorded / (time.perf_counter() - started)


async def old_alerts(store: Store, world: World, count: int) -> None:
    """`count` alerts sent 40 days ago, with their events: all of it due for pruning."""
    made = world.postings(count, seed=9)
    for start in range(0, count, 2000):
        chunk = [e.model_copy(update={"id": f"old-{e.id}"}) for e in made[start : start + 2000]]
        await store.ledger.record(chunk, [Match("o" * 32, e, [2]) for e in chunk])
    old = utcnow() - timedelta(days=40)
    async with store.engine.begin() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.event_id.like("old-%"))
            .values(status="sent", next_attempt_at=old)
        )
        await conn.execute(update(events).where(events.c.id.like("old-%")).values(received_at=old))


async def retention(store: Store, world: World, seconds: float) -> None:
    await old_alerts(store, world, 100_000)
    alone = await ingest(store, world, seconds, "alone")
    pruner = Retention(store.engine, RetentionSettings())
    started = time.perf_counter()
    pruning = asyncio.create_task(pruner.prune())
    beside = await ingest(store, world, seconds, "beside")
    pruned = await pruning
    took = time.perf_counter() - started
    print(f"  ingest alone:              {alone:>10,.0f} events/s")
    print(f"  ingest while pruning:      {beside:>10,.0f} events/s ({beside / alone:.2f}× alone)")
    print(
        f"  pruned {pruned.deliveries:,} alerts and {pruned.events:,} events in {took:.1f} s "
        f"({(pruned.deliveries + pruned.events) / took:,.0f} rows/s)"
    )


async def run(url: str, count: int, seconds: float) -> None:
    store = await Store.open(url, auto_migrate=True)
    try:
        world = World()
        await fill(store, world, count)
        await preview(store, world)
        await retention(store, world, seconds)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    for kind in args.stores.split(","):
        print(f"\n{kind}:")
        if kind == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                asyncio.run(run(f"sqlite+aiosqlite:///{tmp}/bench.db", args.events, args.seconds))
        else:
            from devstack.postgres import running_postgres

            with running_postgres() as server:
                asyncio.run(run(server.url, args.events, args.seconds))


if __name__ == "__main__":
    main()
