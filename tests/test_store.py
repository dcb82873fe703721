"""The ledger and the subscriptions on the embedded SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from consumers.events import Event
from service.store import Match, Store, metadata, utcnow
from service.subscriptions import SubscriptionIn

TARGET = "json://127.0.0.1:9/hook"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The same tests on the embedded store and on the scale-out one."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'jobwire.db'}"
    else:
        url = request.getfixturevalue("postgres").url
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
        await engine.dispose()
    store = await Store.open(url)
    yield store
    await store.close()


def spec(**fields: object) -> SubscriptionIn:
    return SubscriptionIn.model_validate({"notify": [TARGET], **fields})


async def test_recording_the_same_batch_twice_records_each_alert_once(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await store.add_subscription(spec(employers=["NORDSTROM"]))
    matches = [
        Match(sub.id, event, [TARGET, "json://127.0.0.1:9/other"]) for event in sample_events[:3]
    ]

    assert await store.record(matches) == 6
    assert await store.record(matches) == 0  # Kafka re-delivered the batch after a crash
    assert (await store.delivery_counts()) == {"pending": 6}


async def test_a_claimed_alert_is_not_claimed_again_until_its_lease_runs_out(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await store.add_subscription(spec(employers=["NORDSTROM"]))
    await store.record([Match(sub.id, sample_events[0], [TARGET])])

    first = await store.claim(10, lease_s=60)
    assert [c.event.id for c in first] == [sample_events[0].id]
    assert first[0].subscription_name == ""
    assert await store.claim(10, lease_s=60) == []

    expired = await store.claim(10, lease_s=-1)  # nothing due: the first lease still holds
    assert expired == []


async def test_an_abandoned_claim_is_picked_up_again(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await store.add_subscription(spec(employers=["NORDSTROM"]))
    await store.record([Match(sub.id, sample_events[0], [TARGET])])
    await store.claim(10, lease_s=-1)  # a worker claimed it and died; the lease is already over

    again = await store.claim(10, lease_s=60)
    assert len(again) == 1
    assert again[0].delivery.attempts == 2


async def test_retry_dead_and_requeue(store: Store, sample_events: list[Event]) -> None:
    sub = await store.add_subscription(spec(employers=["NORDSTROM"]))
    await store.record(
        [Match(sub.id, sample_events[0], [TARGET]), Match(sub.id, sample_events[1], [TARGET])]
    )
    a, b = await store.claim(10, lease_s=60)

    await store.mark_retry(a.delivery.id, utcnow() + timedelta(hours=1), "refused")
    await store.mark_dead(b.delivery.id, "gone")
    assert await store.claim(10, lease_s=60) == []  # the retry is not due yet
    dead = await store.list_deliveries(status="dead")
    assert [(d.id, d.last_error) for d in dead] == [(b.delivery.id, "gone")]

    assert await store.requeue() == 1
    again = await store.claim(10, lease_s=60)
    assert [c.delivery.id for c in again] == [b.delivery.id]


async def test_a_failing_target_holds_back_its_own_backlog_only(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await store.add_subscription(spec(employers=["NORDSTROM"]))
    other = "json://127.0.0.1:9/other"
    await store.record([Match(sub.id, e, [TARGET, other]) for e in sample_events[:3]])

    await store.postpone_target(TARGET, utcnow() + timedelta(hours=1))
    due = await store.claim(10, lease_s=60)
    assert {c.delivery.target for c in due} == {other}
    assert len(due) == 3


async def test_subscription_changes_include_deletes_and_pauses(store: Store) -> None:
    a = await store.add_subscription(spec(employers=["NORDSTROM"]))
    b = await store.add_subscription(spec(cities=["Portland"]))
    changes, seen = await store.subscription_changes(None)
    assert {(s.id, wanted) for s, wanted in changes} == {(a.id, True), (b.id, True)}

    assert await store.delete_subscription(a.id)
    assert await store.update_subscription(b.id, spec(cities=["Dallas"], active=False))
    changes, _ = await store.subscription_changes(seen)
    assert {(s.id, wanted) for s, wanted in changes} == {(a.id, False), (b.id, False)}
    assert [s.id for s in await store.list_subscriptions()] == [b.id]
    assert await store.get_subscription(a.id) is None


async def test_users_are_unique_found_by_key_hash_and_take_their_subscriptions_with_them(
    store: Store,
) -> None:
    ana = await store.add_user("ana", "a" * 64)
    assert ana is not None
    assert await store.add_user("ana", "b" * 64) is None  # the name is taken
    assert await store.user_by_key_hash("a" * 64) == ana
    assert await store.user_by_key_hash("c" * 64) is None
    mine = await store.add_subscription(spec(employers=["Ross"]), owner=ana.id)
    others = await store.add_subscription(spec(employers=["Ross"]))
    assert await store.count_subscriptions(ana.id) == 1

    assert await store.remove_user("ana") == 1
    assert await store.remove_user("ana") is None
    assert await store.user_by_key_hash("a" * 64) is None
    assert await store.get_subscription(mine.id) is None
    assert await store.get_subscription(others.id) is not None


async def test_a_service_secret_is_made_once_and_shared(store: Store) -> None:
    first = await store.service_secret("signing", "made-by-instance-one")
    second = await store.service_secret("signing", "made-by-instance-two")
    assert first == second == "made-by-instance-one"
