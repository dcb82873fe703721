"""The ledger and the subscriptions on the embedded SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from consumers.events import Event
from service.store import Match, Store, utcnow
from service.subscriptions import SubscriptionIn
from tests.conftest import empty_database

TARGET = "json://127.0.0.1:9/hook"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The same tests on the embedded store and on the scale-out one."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'jobwire.db'}"
    else:
        url = request.getfixturevalue("postgres").url
        await empty_database(url)
    store = await Store.open(url, auto_migrate=True)
    yield store
    await store.close()


def spec(**fields: object) -> SubscriptionIn:
    return SubscriptionIn.model_validate({"notify": [TARGET], **fields})


async def test_recording_the_same_batch_twice_records_each_alert_once(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    matches = [
        Match(sub.id, event, [TARGET, "json://127.0.0.1:9/other"]) for event in sample_events[:3]
    ]

    assert await store.ledger.record(sample_events[:3], matches) == 6
    # Kafka re-delivered the batch after a crash
    assert await store.ledger.record(sample_events[:3], matches) == 0
    assert (await store.ledger.counts()) == {"pending": 6}


async def test_a_claimed_alert_is_not_claimed_again_until_its_lease_runs_out(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    await store.ledger.record(sample_events[:1], [Match(sub.id, sample_events[0], [TARGET])])

    first = await store.ledger.claim(10, lease_s=60)
    assert [c.event.id for c in first] == [sample_events[0].id]
    assert first[0].subscription_name == ""
    assert await store.ledger.claim(10, lease_s=60) == []

    expired = await store.ledger.claim(10, lease_s=-1)  # nothing due: the first lease still holds
    assert expired == []


async def test_an_abandoned_claim_is_picked_up_again(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    await store.ledger.record(sample_events[:1], [Match(sub.id, sample_events[0], [TARGET])])
    await store.ledger.claim(
        10, lease_s=-1
    )  # a worker claimed it and died; the lease is already over

    again = await store.ledger.claim(10, lease_s=60)
    assert len(again) == 1
    assert again[0].delivery.attempts == 2


async def test_retry_dead_and_requeue(store: Store, sample_events: list[Event]) -> None:
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    await store.ledger.record(
        sample_events[:2],
        [Match(sub.id, sample_events[0], [TARGET]), Match(sub.id, sample_events[1], [TARGET])],
    )
    a, b = await store.ledger.claim(10, lease_s=60)

    await store.ledger.mark_retry(a.delivery.id, utcnow() + timedelta(hours=1), "refused")
    await store.ledger.mark_dead(b.delivery.id, "gone")
    assert await store.ledger.claim(10, lease_s=60) == []  # the retry is not due yet
    dead = await store.ledger.recent(status="dead")
    assert [(d.id, d.last_error) for d in dead] == [(b.delivery.id, "gone")]

    assert await store.ledger.requeue() == 1
    again = await store.ledger.claim(10, lease_s=60)
    assert [c.delivery.id for c in again] == [b.delivery.id]


async def test_a_failing_target_holds_back_its_own_backlog_only(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    other = "json://127.0.0.1:9/other"
    await store.ledger.record(
        sample_events[:3], [Match(sub.id, e, [TARGET, other]) for e in sample_events[:3]]
    )

    await store.ledger.postpone_target(TARGET, utcnow() + timedelta(hours=1))
    due = await store.ledger.claim(10, lease_s=60)
    assert {c.delivery.target for c in due} == {other}
    assert len(due) == 3


async def test_subscription_changes_include_deletes_and_pauses(store: Store) -> None:
    a = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    b = await store.subscriptions.add(spec(cities=["Portland"]))
    changes, seen = await store.subscriptions.changes(None)
    assert {(s.id, wanted) for s, wanted in changes} == {(a.id, True), (b.id, True)}

    assert await store.subscriptions.delete(a.id)
    assert await store.subscriptions.update(b.id, spec(cities=["Dallas"], active=False))
    changes, _ = await store.subscriptions.changes(seen)
    assert {(s.id, wanted) for s, wanted in changes} == {(a.id, False), (b.id, False)}
    assert [s.id for s in await store.subscriptions.all()] == [b.id]
    assert await store.subscriptions.get(a.id) is None


async def test_users_are_unique_found_by_key_hash_and_take_their_subscriptions_with_them(
    store: Store,
) -> None:
    ana = await store.accounts.add("ana", "a" * 64)
    assert ana is not None
    assert await store.accounts.add("ana", "b" * 64) is None  # the name is taken
    assert await store.accounts.by_key_hash("a" * 64) == ana
    assert await store.accounts.by_key_hash("c" * 64) is None
    mine = await store.subscriptions.add(spec(employers=["Ross"]), owner=ana.id)
    others = await store.subscriptions.add(spec(employers=["Ross"]))
    assert await store.subscriptions.count(ana.id) == 1

    erased = await store.accounts.erase(ana.id)
    assert erased is not None
    assert (erased.subscriptions, erased.deliveries) == (1, 0)
    assert await store.accounts.erase(ana.id) is None
    assert await store.accounts.by_key_hash("a" * 64) is None
    assert await store.subscriptions.get(mine.id) is None
    assert await store.subscriptions.get(others.id) is not None


async def test_a_service_secret_is_made_once_and_shared(store: Store) -> None:
    first = await store.secrets.get_or_create("signing", "made-by-instance-one")
    second = await store.secrets.get_or_create("signing", "made-by-instance-two")
    assert first == second == "made-by-instance-one"
