"""Digests through the real pipeline and ledger: rows wait for their time, then go out as one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from config.settings import DeliverySettings
from consumers.events import Event, JobPosting
from service.delivery import DeliveryFailed, DeliveryWorker, Message
from service.pipeline import LiveSubscriptions, Pipeline
from service.store import Store, utcnow
from service.subscriptions import SubscriptionIn
from tests.conftest import eventually

HOOK = "json://hooks.example.com/digest"


class Inbox:
    """A notifier that keeps what it is given, and can fail on demand."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Message]] = []
        self.failing = False

    async def send(self, target: str, message: Message) -> None:
        if self.failing:
            raise DeliveryFailed("HTTP 503")
        self.messages.append((target, message))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'jobwire.db'}")
    yield store
    await store.close()


async def subscribe(store: Store, **fields: object) -> str:
    spec = SubscriptionIn.model_validate({"employers": ["ROSS"], "notify": [HOOK], **fields})
    return (await store.subscriptions.add(spec)).id


async def pipeline(store: Store) -> Pipeline:
    live = LiveSubscriptions(store)
    await live.refresh()
    return Pipeline(live, store, lambda: None)


def settings() -> DeliverySettings:
    return DeliverySettings(
        max_attempts=2, backoff_base_s=0.05, backoff_cap_s=0.1, poll_interval_s=0.02, lease_s=1
    )


async def deliver(store: Store, inbox: Inbox, until_sent: int) -> None:
    worker = DeliveryWorker(store, inbox, settings())
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def sent() -> bool:
        return (await store.ledger.counts()).get("sent", 0) >= until_sent

    try:
        await eventually(sent, within_s=10, every_s=0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def ross(sample_events: list[Event]) -> list[Event]:
    return [e for e in sample_events if isinstance(e, JobPosting) and "ROSS" in e.employer]


async def test_a_daily_digest_waits_then_sends_every_match_as_one_message_newest_first(
    store: Store, sample_events: list[Event]
) -> None:
    await subscribe(store, frequency="daily", at="08:00", timezone="Europe/Paris", name="Ross")
    record = await pipeline(store)
    matching = ross(sample_events)
    assert len(matching) >= 3
    for event in matching:  # one batch per event: they arrive over time
        await record([event])

    rows = await store.ledger.recent()
    assert {row.digest for row in rows} == {True}
    due = {row.next_attempt_at for row in rows}
    assert len(due) == 1
    assert due.pop() > utcnow()  # the next 08:00 in Paris, not now
    assert await store.ledger.claim(10, lease_s=60) == []  # never sent one by one
    assert await store.ledger.claim_digests(10, lease_s=60) == []  # and not yet

    assert await store.ledger.send_digests_now() == len(matching)
    inbox = Inbox()
    await deliver(store, inbox, until_sent=len(matching))

    ((target, message),) = inbox.messages
    assert target == HOOK
    assert f"{len(matching)} new postings" in message.title
    assert "Ross" in message.title
    lines = [line for line in message.body.splitlines() if line.startswith("- ")]
    assert [line[2:].split(" at ")[0] for line in lines] == [e.title for e in matching][::-1]
    sent = await store.ledger.recent()
    assert {row.status for row in sent} == {"sent"}
    assert len({row.digest_id for row in sent}) == 1  # the rows show which digest took them


async def test_quiet_hours_hold_instant_alerts_and_release_them_as_one_digest(
    store: Store, sample_events: list[Event]
) -> None:
    now = utcnow()
    start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    quiet = f"{start:%H:%M}-{end:%H:%M}"
    await subscribe(store, quiet_hours=quiet)
    record = await pipeline(store)
    await record(ross(sample_events))

    rows = await store.ledger.recent()
    assert {row.digest for row in rows} == {True}
    (held_until,) = {row.next_attempt_at for row in rows}
    assert held_until.strftime("%H:%M") == f"{end:%H:%M}"  # when the quiet hours end
    await store.ledger.send_digests_now()
    inbox = Inbox()
    await deliver(store, inbox, until_sent=len(rows))
    assert len(inbox.messages) == 1


async def test_a_digest_whose_target_keeps_failing_dies_whole_with_the_reason(
    store: Store, sample_events: list[Event]
) -> None:
    await subscribe(store, frequency="hourly")
    record = await pipeline(store)
    await record(ross(sample_events))
    await store.ledger.send_digests_now()
    inbox = Inbox()
    inbox.failing = True
    worker = DeliveryWorker(store, inbox, settings())
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def all_dead() -> bool:
        return (await store.ledger.counts()).get("dead", 0) == len(ross(sample_events))

    try:
        await eventually(all_dead, within_s=10, every_s=0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    dead = await store.ledger.recent(status="dead")
    assert len(dead) == len(ross(sample_events))
    assert {row.last_error for row in dead} == {"HTTP 503"}


async def test_an_abandoned_digest_is_claimed_again_whole(
    store: Store, sample_events: list[Event]
) -> None:
    await subscribe(store, frequency="daily")
    record = await pipeline(store)
    await record(ross(sample_events))
    await store.ledger.send_digests_now()
    (first,) = await store.ledger.claim_digests(10, lease_s=-1)  # a worker took it and died
    (again,) = await store.ledger.claim_digests(10, lease_s=60)
    assert [i.delivery.id for i in again.items] == [i.delivery.id for i in first.items]
    assert again.digest_id == first.digest_id


@pytest.mark.parametrize("how", ["paused", "deleted"])
async def test_a_digest_waiting_for_a_paused_or_deleted_subscription_is_never_sent(
    how: str, store: Store, sample_events: list[Event]
) -> None:
    sub = await subscribe(store, frequency="daily", at="08:00", timezone="Europe/Paris")
    record = await pipeline(store)
    await record(ross(sample_events))
    if how == "paused":  # what the one-click unsubscribe link does
        await store.subscriptions.set_active(sub, False)
    else:
        assert await store.subscriptions.delete(sub)

    await store.ledger.send_digests_now()
    assert await store.ledger.claim_digests(10, lease_s=60) == []
    rows = await store.ledger.recent()
    assert {(row.status, row.last_error) for row in rows} == {
        ("dead", f"its subscription was {how}")
    }
    # And an operator's "send the dead ones again" does not bring them back.
    assert await store.ledger.requeue() == 0
