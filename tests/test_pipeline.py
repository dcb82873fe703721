"""The pipeline's preparation of a batch: what it builds, and that it shares the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from consumers.events import Event, JobPosting
from service.pipeline import LiveSubscriptions, Pipeline
from service.store import Recording, Store
from service.subscriptions import SubscriptionIn


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'jobwire.db'}")
    yield store
    await store.close()


async def pipeline_for_nordstrom(store: Store) -> Pipeline:
    spec = SubscriptionIn.model_validate(
        {"employers": ["NORDSTROM"], "notify": ["json://hooks.example.com/a"]}
    )
    await store.subscriptions.add(spec)
    live = LiveSubscriptions(store)
    await live.refresh()
    return Pipeline(live, store, lambda: None)


def postings(n: int) -> list[Event]:
    return [
        JobPosting(
            id=f"p{i}",
            employer="NORDSTROM" if i % 2 == 0 else "ACME",
            title="Asset Protection Agent",
            city="Portland",
        )
        for i in range(n)
    ]


async def test_a_large_batch_is_prepared_in_parts_letting_the_batch_being_written_move_on(
    store: Store,
) -> None:
    pipeline = await pipeline_for_nordstrom(store)
    events = postings(500)
    turns = 0

    async def other_task() -> None:  # stands for the write in flight, waiting on its next step
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    beside = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    before = turns
    await pipeline.prepare(events, list(range(1, len(events) + 1)))
    during = turns - before
    beside.cancel()
    # A turn between parts of PREPARE_STRIDE (100) events. Without the parts, nothing else
    # ran until the whole batch was prepared.
    assert during >= 4


async def test_a_batch_of_many_matches_each_is_prepared_in_smaller_parts(store: Store) -> None:
    """At fan-out 100, PREPARE_STRIDE events make 10,000 rows: the write in flight waited for
    all of them on each of its round trips. Parts shrink to about PREPARE_ROWS rows."""
    for k in range(100):
        await store.subscriptions.add(
            SubscriptionIn.model_validate(
                {"employers": ["NORDSTROM"], "notify": [f"json://hooks.example.com/{k}"]}
            )
        )
    live = LiveSubscriptions(store)
    await live.refresh()
    pipeline = Pipeline(live, store, lambda: None)
    events = [e for e in postings(600) if isinstance(e, JobPosting) and e.employer == "NORDSTROM"]
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    beside = asyncio.create_task(other_task())
    for _ in range(2):  # the second batch starts with the parts the first ended with
        await asyncio.sleep(0)
        before = turns
        prepared = await pipeline.prepare(events)
        during = turns - before
        assert len(prepared.recording.deliveries) == 30_000
    beside.cancel()
    # 30,000 rows in parts of about 2,000: a turn between each two. With parts of
    # PREPARE_STRIDE events, there were 2.
    assert during >= 12


async def test_a_batch_prepared_in_parts_is_the_batch_prepared_at_once(store: Store) -> None:
    pipeline = await pipeline_for_nordstrom(store)
    events = postings(300)  # three parts
    # The same event again in a later part (Kafka can hand a batch an event twice).
    events.append(events[0])
    stamps = list(range(1_764_230_400_000, 1_764_230_400_000 + len(events)))
    stamps[-2] = -1  # a record without a timestamp

    prepared = await pipeline.prepare(events, stamps)

    at = prepared.recording.at
    rows, matched = pipeline.live.alerts(events, at)
    assert prepared.recording == Recording.of(events, rows, at, stamps)
    assert prepared.matched == matched
    assert matched["p0"] == 2  # counted each time it came, as before
    assert prepared.event_ids == [event.id for event in events]
    assert len(prepared.recording.events) == 300
    # The event seen twice keeps its first place and the last timestamp it came with.
    assert prepared.recording.events[0][-1] == stamps[-1]
    assert prepared.recording.events[-1][-1] is None
