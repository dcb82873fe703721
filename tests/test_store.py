"""The ledger and the subscriptions on the embedded SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import Executable, delete, event, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from consumers.events import Event, JobPosting
from devstack.postgres import PostgresServer
from service.own_mail import JOBWIRE_MAIL, own_mail_target
from service.store import Match, Store, bulk, explain, utcnow
from service.store import ledger as ledger_module
from service.store.bulk import DeliveryRow
from service.store.ledger import Outcomes
from service.store.schema import deliveries, events, owner_counts, subscriptions, targets
from service.store.subscriptions import OwnerLimitReached
from service.store.target_state import dead_targets_statement
from service.subscriptions import Subscription, SubscriptionIn
from tests.conftest import empty_database

TARGET = "json://127.0.0.1:9/hook"
OTHER = "json://127.0.0.1:9/other"


@pytest.fixture
def store(store_of_each_kind: Store) -> Store:
    return store_of_each_kind


def spec(**fields: object) -> SubscriptionIn:
    return SubscriptionIn.model_validate({"notify": [TARGET], **fields})


async def alerts_for_two_targets(store: Store, sample: list[Event]) -> Subscription:
    """A subscription that notifies TARGET and OTHER, with the alerts of `sample` recorded for
    both."""
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"], notify=[TARGET, OTHER]))
    await store.ledger.record(sample, [Match(sub.id, e, sub.target_ids) for e in sample])
    return sub


@pytest.mark.parametrize("owned_by", [None, "ana"])
async def test_a_new_subscriptions_target_ids_follow_its_notify_order(
    store: Store, owned_by: str | None
) -> None:
    # The ids come back from one multi-row INSERT ... RETURNING (with an owner and a limit,
    # on PostgreSQL, from the statement that also counts) and are paired with the URLs by
    # position: the ledger's rows name targets by these ids.
    urls = [f"json://127.0.0.1:9/hook{n}" for n in range(12)]
    made = await store.subscriptions.add(
        spec(employers=["NORDSTROM"], notify=urls), owner=owned_by, max_owned=5
    )
    stored = await store.subscriptions.get(made.id)
    assert stored is not None
    assert list(zip(made.target_ids, made.notify, strict=True)) == list(
        zip(stored.target_ids, stored.notify, strict=True)
    )
    assert made.notify == urls


async def test_a_subscription_added_under_its_owners_limit_reads_back_as_given(
    store: Store,
) -> None:
    """Every field, each away from its default: on PostgreSQL the row reaches the server as
    one JSON object (migration 0013's function), on SQLite as columns."""
    given = spec(
        name="Nights in Lyon — « veille »",
        employers=["NORDSTROM", "Macy's"],
        titles=["asset protection"],
        cities=["Lyon"],
        exclude=["intern"],
        kinds=["article"],
        active=False,
        frequency="weekly",
        at="07:30",
        timezone="Europe/Paris",
        weekday="friday",
        quiet_hours="22:00-07:00",
        notify=[TARGET, OTHER],
    )
    made = await store.subscriptions.add(given, owner="ana", max_owned=5)
    stored = await store.subscriptions.get(made.id)
    assert stored == made
    assert stored.model_dump(include=set(SubscriptionIn.model_fields)) == given.model_dump()


async def test_an_owner_at_the_limit_is_refused_and_nothing_is_stored(store: Store) -> None:
    for n in range(3):
        await store.subscriptions.add(spec(employers=[f"E{n}"]), owner="ana", max_owned=3)
    await store.subscriptions.add(spec(employers=["other"]), owner="bob", max_owned=3)
    with pytest.raises(OwnerLimitReached) as refused:
        await store.subscriptions.add(spec(employers=["E3"]), owner="ana", max_owned=3)
    assert refused.value.owned == 3
    assert await store.subscriptions.count("ana") == 3
    assert len(await store.subscriptions.all()) == 4
    async with store.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(targets))).scalar() == 4


async def test_recording_the_same_batch_twice_records_each_alert_once(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"], notify=[TARGET, OTHER]))
    matches = [Match(sub.id, event, sub.target_ids) for event in sample_events[:3]]

    assert await store.ledger.record(sample_events[:3], matches) == 6
    # Kafka re-delivered the batch after a crash
    assert await store.ledger.record(sample_events[:3], matches) == 0
    assert (await store.ledger.counts()) == {"pending": 6}


async def test_a_claimed_alert_brings_its_events_kafka_timestamp_from_the_store(
    store: Store, sample_events: list[Event]
) -> None:
    """Whichever worker sends an alert (another instance, or this one after a restart) times
    its latency from when the event was published to Kafka."""
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    batch = sample_events[:3]
    matches = [Match(sub.id, event, sub.target_ids) for event in batch]
    # The last record had no timestamp (Kafka gives -1).
    stamps = [1_764_230_400_123, 1_764_230_401_000, -1]
    assert await store.ledger.record(batch, matches, stamps) == 3
    claimed = await store.ledger.claim(10, 60)
    assert {alert.event.id: alert.kafka_timestamp_ms for alert in claimed} == {
        batch[0].id: 1_764_230_400_123,
        batch[1].id: 1_764_230_401_000,
        batch[2].id: None,
    }


async def test_a_batch_whose_events_fail_to_be_written_leaves_no_ledger_row(
    store: Store, sample_events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    batch = sample_events[:3]
    matches = [Match(sub.id, event, sub.target_ids) for event in batch]

    async def store_down(*_: object) -> set[tuple[str, str]]:
        raise ConnectionError("the store went away")

    monkeypatch.setattr(ledger_module, "insert_events", store_down)
    with pytest.raises(ConnectionError):
        await store.ledger.record(batch, matches)
    assert await store.ledger.counts() == {}


async def test_a_batch_whose_ledger_rows_fail_is_recorded_in_full_when_it_comes_again(
    store: Store, sample_events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL its events may be committed already; the second time finds them there
    and still writes every alert."""
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"], notify=[TARGET, OTHER]))
    batch = sample_events[:3]
    matches = [Match(sub.id, event, sub.target_ids) for event in batch]
    written = ledger_module.insert_deliveries

    async def store_down(*_: object, **__: object) -> int:
        raise ConnectionError("the store went away")

    monkeypatch.setattr(ledger_module, "insert_deliveries", store_down)
    with pytest.raises(ConnectionError):
        await store.ledger.record(batch, matches)
    assert await store.ledger.counts() == {}
    monkeypatch.setattr(ledger_module, "insert_deliveries", written)
    assert await store.ledger.record(batch, matches) == 6
    assert await store.ledger.counts() == {"pending": 6}


@pytest.mark.integration
async def test_on_postgresql_a_write_held_up_by_another_transaction_gives_up_not_hangs(
    postgres: PostgresServer, sample_events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another transaction holding a batch's event (here, for good) stops the write only for
    WRITE_LOCK_TIMEOUT_MS: it then fails, and the batch is read again, instead of waiting
    forever (two instances' writes could otherwise wait for each other)."""
    monkeypatch.setattr(ledger_module, "WRITE_LOCK_TIMEOUT_MS", 300)
    await empty_database(postgres.url)
    store = await Store.open(postgres.url, auto_migrate=True)
    blocker = await asyncpg.connect(postgres.dsn)
    try:
        sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
        batch = sample_events[:3]
        matches = [Match(sub.id, event, sub.target_ids) for event in batch]
        held = blocker.transaction()
        await held.start()
        await blocker.execute(
            "INSERT INTO events (kind, id, payload, received_at) VALUES ($1, $2, '{}', now())",
            batch[1].kind,
            batch[1].id,
        )
        with pytest.raises(DBAPIError, match="lock timeout") as refused:
            await asyncio.wait_for(store.ledger.record(batch, matches), 20)
        assert "the batch is read again" in explain(refused.value)
        assert await store.ledger.counts() == {}
        await held.rollback()
        assert await store.ledger.record(batch, matches) == 3
    finally:
        await blocker.close()
        await store.close()


async def test_an_event_seen_again_after_retention_removed_it_records_no_alert_twice(
    store: Store, sample_events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "COPY_ROWS", 1)  # on PostgreSQL, by COPY, as a large batch
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    batch = sample_events[:3]
    matches = [Match(sub.id, event, sub.target_ids) for event in batch]
    assert await store.ledger.record(batch, matches) == 3
    # Retention removed the events (their alerts went out) but the ledger rows remain; then
    # Kafka delivered the batch again (an offset reset). On PostgreSQL the rows of events new
    # to the store go in by COPY, which cannot skip rows that are there.
    async with store.engine.begin() as conn:
        await conn.execute(delete(events))

    assert await store.ledger.record(batch, matches) == 0
    assert (await store.ledger.counts()) == {"pending": 3}
    # A batch mixing an event seen before and a new one records only the new one's alert.
    mixed = sample_events[:4]
    more = [Match(sub.id, event, sub.target_ids) for event in mixed]
    assert await store.ledger.record(mixed, more) == 1


async def test_a_claimed_alert_is_not_claimed_again_until_its_lease_runs_out(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    await store.ledger.record(sample_events[:1], [Match(sub.id, sample_events[0], sub.target_ids)])

    first = await store.ledger.claim(10, lease_s=60)
    assert [c.event.id for c in first] == [sample_events[0].id]
    assert first[0].subscription_name == ""
    assert await store.ledger.claim(10, lease_s=60) == []

    expired = await store.ledger.claim(10, lease_s=-1)  # nothing due: the first lease still holds
    assert expired == []


async def test_workers_claiming_at_once_never_take_the_same_alert(store: Store) -> None:
    """Instances in one consumer group share the ledger: each alert goes to one of them, and
    a claim takes its rows with everything it sends them with."""
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"], notify=[TARGET, OTHER]))
    waiting = _postings("at-once", 30)
    await store.ledger.record(waiting, [Match(sub.id, e, sub.target_ids) for e in waiting])

    claims = await asyncio.gather(*(store.ledger.claim(10, lease_s=60) for _ in range(8)))

    taken = [(c.event.id, c.delivery.target_id) for claim in claims for c in claim]
    assert len(taken) == len(set(taken)) == 60
    assert all(c.delivery.status == "sending" and c.delivery.attempts == 1 for c in claims[0])
    assert {c.delivery.target for claim in claims for c in claim} == {TARGET, OTHER}
    assert {c.subscription_name for claim in claims for c in claim} == {""}
    assert await store.ledger.counts() == {"sending": 60}


async def test_an_abandoned_claim_is_picked_up_again(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    await store.ledger.record(sample_events[:1], [Match(sub.id, sample_events[0], sub.target_ids)])
    # A worker claimed it and died; the lease is already over.
    await store.ledger.claim(10, lease_s=-1)

    again = await store.ledger.claim(10, lease_s=60)
    assert len(again) == 1
    assert again[0].delivery.attempts == 2


async def test_retry_dead_and_requeue(store: Store, sample_events: list[Event]) -> None:
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    await store.ledger.record(
        sample_events[:2],
        [Match(sub.id, e, sub.target_ids) for e in sample_events[:2]],
    )
    a, b = await store.ledger.claim(10, lease_s=60)

    await store.ledger.apply(
        Outcomes(
            retry=[(a.delivery.id, utcnow() + timedelta(hours=1), "refused")],
            dead=[(b.delivery.id, "gone")],
        )
    )
    assert await store.ledger.claim(10, lease_s=60) == []  # the retry is not due yet
    dead = await store.ledger.recent(status="dead")
    assert [(d.id, d.last_error) for d in dead] == [(b.delivery.id, "gone")]

    assert await store.ledger.requeue() == 1
    again = await store.ledger.claim(10, lease_s=60)
    assert [c.delivery.id for c in again] == [b.delivery.id]


async def test_a_failing_target_holds_back_its_own_backlog_only(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await alerts_for_two_targets(store, sample_events[:3])
    failing, _ = sub.target_ids

    await store.ledger.apply(Outcomes(held_targets={failing: utcnow() + timedelta(hours=1)}))
    due = await store.ledger.claim(10, lease_s=60)
    assert {c.delivery.target for c in due} == {OTHER}
    assert len(due) == 3
    await store.ledger.apply(Outcomes(resumed_targets={failing}))  # it answers again
    assert {c.delivery.target for c in await store.ledger.claim(10, lease_s=60)} == {TARGET}


async def test_a_claim_passes_over_targets_the_worker_has_a_backlog_of_and_keeps_their_order(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await alerts_for_two_targets(store, sample_events[:3])
    busy, _ = sub.target_ids

    due = await store.ledger.claim(10, lease_s=60, skip_targets={busy})
    assert [c.delivery.target for c in due] == [OTHER] * 3
    # The busy target's rows were left as they were: due, in their order, for a later claim.
    rest = await store.ledger.claim(10, lease_s=60)
    assert [c.delivery.target for c in rest] == [TARGET] * 3
    assert [c.delivery.id for c in rest] == sorted(c.delivery.id for c in rest)
    assert all(c.delivery.attempts == 1 for c in rest)


async def test_a_claim_passes_over_every_target_sent_through_a_busy_server_at_once(
    store: Store, sample_events: list[Event]
) -> None:
    """People who signed up on the page each have a target, all sent through the operator's
    mail server: while it is busy, a claim leaves every one of them due, and says of the
    rest what they go through."""
    events = sample_events[:2]
    for person in ("ana", "bo"):
        mine = await store.subscriptions.add(
            spec(employers=["NORDSTROM"], notify=[own_mail_target(f"{person}@example.com")])
        )
        await store.ledger.record(events, [Match(mine.id, e, mine.target_ids) for e in events])
    hook = await store.subscriptions.add(spec(employers=["NORDSTROM"], notify=[TARGET]))
    await store.ledger.record(events, [Match(hook.id, e, hook.target_ids) for e in events])

    due = await store.ledger.claim(10, lease_s=60, skip_via={JOBWIRE_MAIL})
    assert [(c.delivery.target, c.delivery.sent_via) for c in due] == [(TARGET, "")] * 2
    rest = await store.ledger.claim(10, lease_s=60)
    assert len(rest) == 4
    assert {c.delivery.sent_via for c in rest} == {JOBWIRE_MAIL}
    assert all(c.delivery.attempts == 1 for c in rest)


async def test_a_claim_for_one_busy_target_or_server_takes_only_its_rows(
    store: Store, sample_events: list[Event]
) -> None:
    """A busy target with a backlog is fed by claims of its own: by its targets, or by the
    server they all go through (jobwire's own mail), never anyone else's alerts."""
    events = sample_events[:2]
    mail = await store.subscriptions.add(
        spec(employers=["NORDSTROM"], notify=[own_mail_target("ana@example.com")])
    )
    hook = await store.subscriptions.add(spec(employers=["NORDSTROM"], notify=[TARGET, OTHER]))
    for sub in (mail, hook):
        await store.ledger.record(events, [Match(sub.id, e, sub.target_ids) for e in events])
    first_hook = hook.target_ids[0]

    mine = await store.ledger.claim(10, lease_s=60, only_targets={first_hook})
    assert [c.delivery.target for c in mine] == [TARGET] * 2
    mailed = await store.ledger.claim(10, lease_s=60, only_via=JOBWIRE_MAIL)
    assert [c.delivery.sent_via for c in mailed] == [JOBWIRE_MAIL] * 2
    rest = await store.ledger.claim(10, lease_s=60)
    assert [c.delivery.target for c in rest] == [OTHER] * 2


async def test_alerts_given_back_unsent_are_claimed_again_first_in_their_order(
    store: Store, sample_events: list[Event]
) -> None:
    """What a worker claimed and gives back (a busy target's overflow, or its drain at a stop)
    goes back to its place: ahead of the same target's later alerts, its attempt not counted.
    Made due "now" instead, it went behind alerts that were due before it."""
    events = sample_events[:4]
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"], notify=[TARGET]))
    await store.ledger.record(events, [Match(sub.id, e, sub.target_ids) for e in events])
    first = await store.ledger.claim(2, lease_s=60)
    await store.ledger.release([c.delivery.id for c in first])
    again = await store.ledger.claim(2, lease_s=60)
    assert [c.event.id for c in again] == [c.event.id for c in first]
    assert all(c.delivery.attempts == 1 for c in again)


async def test_a_dead_target_takes_its_waiting_alerts_with_it_and_requeue_spares_removed_ones(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await alerts_for_two_targets(store, sample_events[:3])
    failing, _ = sub.target_ids

    died = await store.ledger.apply(Outcomes(dead_targets={failing: "550 no such user"}))
    assert died == {failing: 3}
    assert await store.ledger.counts() == {"pending": 3, "dead": 3}
    # The user takes the dead target out of the subscription: its alerts stay dead.
    await store.subscriptions.update(sub.id, spec(employers=["NORDSTROM"], notify=[OTHER]))
    assert await store.ledger.requeue() == 0
    kept = await store.subscriptions.get(sub.id)
    assert kept is not None
    assert kept.target_ids == [sub.target_ids[1]]  # the kept target keeps its id


async def test_subscription_changes_include_deletes_and_pauses(store: Store) -> None:
    a = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    b = await store.subscriptions.add(spec(cities=["Portland"]))
    changes, seen = await store.subscriptions.changes(None)
    assert {(c.id, c.wanted) for c in changes} == {(a.id, True), (b.id, True)}

    assert await store.subscriptions.delete(a.id)
    assert await store.subscriptions.update(b.id, spec(cities=["Dallas"], active=False))
    changes, _ = await store.subscriptions.changes(seen)
    assert {(c.id, c.wanted) for c in changes} == {(a.id, False), (b.id, False)}
    assert [s.id for s in await store.subscriptions.all()] == [b.id]
    assert await store.subscriptions.get(a.id) is None


async def test_an_owners_count_follows_every_write_that_adds_or_removes_a_live_subscription(
    store: Store,
) -> None:
    """The limit reads a number the store's triggers keep (migration 0014), not the rows:
    whatever writes the rows (jobwire's code, retention, an operator's SQL), it must agree
    with them."""

    async def live_rows(owner: str) -> int:
        async with store.engine.connect() as conn:
            query = select(func.count()).where(
                subscriptions.c.owner == owner, subscriptions.c.deleted.is_(False)
            )
            return int((await conn.execute(query)).scalar_one())

    async def counts_agree() -> dict[str, int]:
        counted = {who: await store.subscriptions.count(who) for who in owners}
        assert counted == {who: await live_rows(who) for who in owners}
        return counted

    ana = await store.accounts.add("ana", "a" * 64)
    assert ana is not None
    owners = (ana.id, "bob")
    made = [
        await store.subscriptions.add(spec(employers=[f"E{n}"]), owner=ana.id, max_owned=3)
        for n in range(3)
    ]
    await store.subscriptions.add(spec(employers=["B"]), owner="bob")
    await store.subscriptions.add(spec(employers=["mine"]))  # the operator's: no owner
    assert await counts_agree() == {ana.id: 3, "bob": 1}

    # A delete frees room under the limit; pausing and editing do not.
    assert await store.subscriptions.delete(made[0].id, owner=ana.id)
    await store.subscriptions.set_active(made[1].id, False)
    await store.subscriptions.update(made[2].id, spec(employers=["E9"]), owner=ana.id)
    assert await counts_agree() == {ana.id: 2, "bob": 1}
    await store.subscriptions.add(spec(employers=["E3"]), owner=ana.id, max_owned=3)
    with pytest.raises(OwnerLimitReached) as refused:
        await store.subscriptions.add(spec(employers=["E4"]), owner=ana.id, max_owned=3)
    assert refused.value.owned == 3

    # Written by hand: rows given to another owner, tombstones purged, a live row removed.
    async with store.engine.begin() as conn:
        await conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == made[2].id)
            .values(owner="bob", updated_at=datetime(2026, 11, 28))
        )
        await conn.execute(delete(subscriptions).where(subscriptions.c.deleted.is_(True)))
        await conn.execute(delete(subscriptions).where(subscriptions.c.id == made[1].id))
    assert await counts_agree() == {ana.id: 1, "bob": 2}

    # Erasing a user takes their subscriptions out of their count, and their id with it.
    assert await store.accounts.erase(ana.id) is not None
    assert await counts_agree() == {ana.id: 0, "bob": 2}
    async with store.engine.connect() as conn:
        kept = await conn.execute(select(owner_counts.c.owner))
        assert [owner for (owner,) in kept] == ["bob"]


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


async def test_when_a_probe_fails_every_waiting_alert_follows_the_targets_backoff(
    store: Store, sample_events: list[Event]
) -> None:
    """Alerts claimed while a probe was in flight were put back to wait for its answer (up
    to the send timeout); the probe's failure sets when the target is tried next, for all."""
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    await store.ledger.record(
        sample_events[:3], [Match(sub.id, e, sub.target_ids) for e in sample_events[:3]]
    )
    (target,) = sub.target_ids
    probe, waiting, _ = await store.ledger.claim(10, lease_s=60)
    now = utcnow()
    await store.ledger.apply(
        Outcomes(deferred=[(waiting.delivery.id, now + timedelta(seconds=30))])
    )
    soon = now + timedelta(seconds=1)
    await store.ledger.apply(
        Outcomes(retry=[(probe.delivery.id, soon, "HTTP 500")], held_targets={target: soon})
    )
    rows = await store.ledger.recent()
    assert {row.next_attempt_at for row in rows if row.status == "pending"} == {soon}


@pytest.fixture
async def postgres_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    url: str = request.getfixturevalue("postgres").url
    await empty_database(url)
    opened = await Store.open(url, auto_migrate=True)
    yield opened
    await opened.close()


@pytest.mark.integration
async def test_a_large_batch_goes_in_over_two_connections_and_each_alert_once(
    postgres_store: Store, sample_events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a large batch's rows are copied in two halves at once, each by a server
    process of its own; recording it again, or after retention removed its events, still
    records nothing twice."""
    store = postgres_store
    monkeypatch.setattr(bulk, "SPLIT_ROWS", 2)
    monkeypatch.setattr(bulk, "COPY_ROWS", 2)
    copied_by: list[int] = []
    copy = bulk._copy_deliveries

    async def spy(
        conn: AsyncConnection, rows: Sequence[DeliveryRow], now: datetime, due_now: datetime
    ) -> int:
        copied_by.append(id((await conn.get_raw_connection()).driver_connection))
        return await copy(conn, rows, now, due_now)

    monkeypatch.setattr(bulk, "_copy_deliveries", spy)
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"], notify=[TARGET, OTHER]))
    batch = sample_events[:4]
    matches = [Match(sub.id, event, sub.target_ids) for event in batch]

    assert await store.ledger.record(batch, matches) == 8
    assert len(set(copied_by)) == 2
    assert await store.ledger.record(batch, matches) == 0
    async with store.engine.begin() as conn:
        await conn.execute(delete(events))
    assert await store.ledger.record(batch, matches) == 0
    assert (await store.ledger.counts()) == {"pending": 8}
    assert len({(d.event_id, d.target_id) for d in await store.ledger.recent()}) == 8


@pytest.mark.integration
async def test_an_event_twice_in_a_large_batch_is_alerted_once_without_waiting(
    postgres_store: Store, sample_events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka can hand a batch the same event twice. Its rows must not land in both halves of
    the two-connection `COPY`: the second would wait on the first's transaction, which ends
    only after both (a stall of WRITE_LOCK_TIMEOUT_MS, then a failed batch)."""
    store = postgres_store
    monkeypatch.setattr(bulk, "SPLIT_ROWS", 2)
    monkeypatch.setattr(bulk, "COPY_ROWS", 2)
    monkeypatch.setattr(ledger_module, "WRITE_LOCK_TIMEOUT_MS", 3_000)
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"], notify=[TARGET, OTHER]))
    first, second = sample_events[:2]
    batch = [first, second, first]  # the middle of its six rows falls in `second`'s
    matches = [Match(sub.id, event, sub.target_ids) for event in batch]

    async with asyncio.timeout(2):
        assert await store.ledger.record(batch, matches) == 4
    assert (await store.ledger.counts()) == {"pending": 4}


async def test_a_large_batchs_alerts_are_claimed_in_the_order_of_its_events(
    postgres_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's two halves go in on two connections at once and take ids from one sequence
    in turn, so ids do not say which event came first; the due time does: the earlier half
    is claimed first, as one connection's batch would be."""
    store = postgres_store
    monkeypatch.setattr(bulk, "SPLIT_ROWS", 2)
    sub = await store.subscriptions.add(
        spec(employers=["NORDSTROM"], notify=[f"json://127.0.0.1:9/{n}" for n in range(20)])
    )
    batch = _postings("in-order", 400)
    await store.ledger.record(batch, [Match(sub.id, e, sub.target_ids) for e in batch])

    claimed = await store.ledger.claim(2_000, 60)
    assert {c.event.id for c in claimed} == {f"in-order-{n}" for n in range(100)}


def test_a_batch_is_halved_at_an_event_boundary_with_no_event_in_both_halves() -> None:
    def rows(*events: str) -> list[DeliveryRow]:
        return [(target, "posting", event, None, False) for event in events for target in (1, 2)]

    def ids(half: Sequence[DeliveryRow]) -> set[str]:
        return {row[2] for row in half}

    # Grouped by event, as the pipeline builds them: cut after the event spanning the middle.
    mine, other = bulk.halves(rows("a", "b", "c"))
    assert (ids(mine), ids(other)) == ({"a", "b"}, {"c"})
    assert len(mine) + len(other) == 6
    # An event twice, apart: its rows all in one half.
    for batch in (rows("a", "b", "a"), rows("a", "b", "c", "a"), rows("a", "b", "b", "c")):
        mine, other = bulk.halves(batch)
        assert not ids(mine) & ids(other)
        assert sorted([*mine, *other]) == sorted(batch)
    # One event: one half holds it all.
    assert sorted(map(len, bulk.halves(rows("a")))) == [0, 2]


@pytest.mark.integration
async def test_when_a_large_batch_fails_its_other_half_is_not_kept_either(
    postgres_store: Store, sample_events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second connection's half commits only after the batch's own transaction: a ledger
    row is never kept without its event, and a failed batch leaves nothing behind."""
    store = postgres_store
    monkeypatch.setattr(bulk, "SPLIT_ROWS", 2)
    monkeypatch.setattr(bulk, "COPY_ROWS", 2)

    async def fails(conn: AsyncConnection, rows: Sequence[DeliveryRow], now: datetime) -> int:
        raise ConnectionResetError("the store went away mid-batch")

    # Runs on the batch's own connection after both halves were copied.
    monkeypatch.setattr(bulk, "_insert_deliveries_postgres", fails)
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    batch = sample_events[:4]
    with pytest.raises(ConnectionResetError):
        await store.ledger.record(batch, [Match(sub.id, event, sub.target_ids) for event in batch])
    assert await store.ledger.counts() == {}
    async with store.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(events))).scalar() == 0


@pytest.mark.integration
async def test_postgresql_connections_are_kept_while_eight_pieces_of_work_run_at_once(
    postgres_store: Store,
) -> None:
    """Eight lookups at once, thirty times (as the API's requests come): the pool keeps its
    connections, instead of opening one for each request beyond the fifth and closing it when
    done (a server process started and ended each time)."""
    engine = postgres_store.engine.sync_engine
    opened = 0

    def count(*_: object) -> None:
        nonlocal opened
        opened += 1

    event.listen(engine, "connect", count)
    try:
        for _ in range(30):
            lookups = (postgres_store.accounts.by_key_hash("no-such-key") for _ in range(8))
            assert await asyncio.gather(*lookups) == [None] * 8
    finally:
        event.remove(engine, "connect", count)
    assert opened <= 8


@pytest.mark.integration
async def test_connections_the_server_dropped_are_replaced_before_they_are_used(
    postgres_store: Store, request: pytest.FixtureRequest
) -> None:
    """A restart or a network cut closes the pool's idle connections under it: the next
    requests still get their answers, on new connections, instead of an error each."""
    store = postgres_store
    user = await store.accounts.add("still-served", "hash-of-a-key")
    assert user is not None
    server: PostgresServer = request.getfixturevalue("postgres")
    other = await asyncpg.connect(server.dsn)
    try:
        ended = await other.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await other.close()
    assert ended >= 1  # the pool's idle connections
    for _ in range(3):
        found = await store.accounts.by_key_hash("hash-of-a-key")
        assert found is not None
        assert found.name == "still-served"
    assert await store.subscriptions.count("still-served") == 0


# -- what a claim reads ------------------------------------------------------------------------


def _postings(prefix: str, count: int) -> list[Event]:
    return [
        JobPosting(id=f"{prefix}-{n}", employer="NORDSTROM", title="Associate", city="Portland")
        for n in range(count)
    ]


def _rows_read_from_deliveries(plan: dict[str, object]) -> int:
    """Rows PostgreSQL's executor read from the deliveries table, in EXPLAIN ANALYZE's plan."""
    read = 0
    if plan.get("Relation Name") == "deliveries":
        loops = int(str(plan.get("Actual Loops", 1)))
        kept = int(str(plan.get("Actual Rows", 0))) + int(
            str(plan.get("Rows Removed by Filter", 0))
        )
        read += kept * loops
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        read += _rows_read_from_deliveries(child)
    return read


async def _work_of(store: Store, statement: Executable) -> int:
    """What running `statement` costs the store, rolled back after: SQLite's virtual-machine
    steps, or the rows PostgreSQL read from the ledger. Counts, not times: the same on any
    machine."""
    sql = str(statement.compile(store.engine, compile_kwargs={"literal_binds": True}))
    if store.engine.dialect.name == "sqlite":
        steps = 0

        def step() -> int:
            nonlocal steps
            steps += 1
            return 0  # go on

        with sqlite3.connect(str(store.engine.url.database)) as raw:
            raw.set_progress_handler(step, 1)
            raw.execute(sql)
            raw.rollback()
        return steps
    async with store.engine.connect() as conn:
        explained = await conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"))
        plan = explained.scalar_one()[0]["Plan"]
        await conn.rollback()
    return _rows_read_from_deliveries(plan)


async def _statistics_as_autovacuum_keeps_them(store: Store) -> None:
    """PostgreSQL's planner reads the ledger in order only once it knows the table is large."""
    if store.engine.dialect.name == "postgresql":
        async with store.engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
                text("ANALYZE deliveries")
            )


async def test_a_claim_reads_what_it_takes_not_the_whole_backlog(store: Store) -> None:
    """After an outage thousands of alerts wait. A claim must cost about what it costs with a
    hundred waiting: claims that gathered and sorted every due row took 30-64 ms with 100,000
    waiting (on SQLite, on the event loop's thread), so the backlog drained ever slower."""
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    first = _postings("first", 100)
    await store.ledger.record(first, [Match(sub.id, e, sub.target_ids) for e in first])
    await _statistics_as_autovacuum_keeps_them(store)
    claim = ledger_module.claim_statement(utcnow(), 10, 60)
    alone = await _work_of(store, claim)
    for batch in range(29):  # each batch is due at its own moment, as the consumer writes them
        more = _postings(f"later-{batch}", 100)
        await store.ledger.record(more, [Match(sub.id, e, sub.target_ids) for e in more])
    await _statistics_as_autovacuum_keeps_them(store)
    behind = await _work_of(store, ledger_module.claim_statement(utcnow(), 10, 60))

    assert behind < 3 * alone, (alone, behind)  # 30 times the backlog: not 30 times the work
    claimed = await store.ledger.claim(10, 60)
    assert [c.event.id for c in claimed] == [f"first-{n}" for n in range(10)]  # oldest first


# -- the ledger's index by target --------------------------------------------------------------


async def _index_pages(store: Store, index: str) -> int:
    """The pages an index of the store takes, as the store counts them."""
    if store.engine.dialect.name == "sqlite":
        query = text("SELECT count(*) FROM dbstat WHERE name = :index")
    else:
        query = text("SELECT pg_relation_size(:index) / current_setting('block_size')::int")
    async with store.engine.connect() as conn:
        return int((await conn.execute(query, {"index": index})).scalar_one())


async def test_a_batchs_waiting_alerts_enter_no_index_by_target(store: Store) -> None:
    """Every index a new ledger row enters is paid for on each row a batch writes (50,000 at
    fan-out 100): the index by target was about a third of PostgreSQL's time for them. It
    holds only alerts taken up, which enter it when first claimed (the claim changes the
    status it holds, so wrote their entry anew anyway); waiting alerts are found by the due
    index."""
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"], notify=[TARGET, OTHER]))
    empty = await _index_pages(store, "ix_deliveries_target")
    waiting = _postings("waiting", 1500)
    await store.ledger.record(waiting, [Match(sub.id, e, sub.target_ids) for e in waiting])

    assert await _index_pages(store, "ix_deliveries_target") == empty
    assert await _index_pages(store, "ix_deliveries_due") > empty  # the 3,000 are there
    claimed = await store.ledger.claim(500, 60)
    await store.ledger.apply(Outcomes(sent=[(c.delivery.id, utcnow()) for c in claimed]))
    assert await _index_pages(store, "ix_deliveries_target") > empty


async def _sent(store: Store, postings: list[Event], sub: Subscription) -> None:
    """`postings` recorded for `sub` and marked sent, as a busy target's history is."""
    await store.ledger.record(postings, [Match(sub.id, e, sub.target_ids) for e in postings])
    async with store.engine.begin() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.target_id.in_(sub.target_ids), deliveries.c.status == "pending")
            .values(status="sent", sent_at=utcnow())
        )


async def test_a_users_dead_targets_are_read_from_their_own_alerts_only(store: Store) -> None:
    """Their page asks for their dead targets on every view: it must cost what their own alerts
    cost, not grow with everyone else's history in the ledger."""
    ana = await store.subscriptions.add(spec(employers=["NORDSTROM"]), owner="ana")
    failed = _postings("ana", 5)
    await store.ledger.record(failed, [Match(ana.id, e, ana.target_ids) for e in failed])
    for alert in await store.ledger.claim(10, 60):
        await store.ledger.apply(Outcomes(dead=[(alert.delivery.id, "HTTP 410")]))
    busy = await store.subscriptions.add(spec(employers=["NORDSTROM"], notify=[OTHER]))
    await _sent(store, _postings("busy", 100), busy)
    await _statistics_as_autovacuum_keeps_them(store)
    alone = await _work_of(store, dead_targets_statement("ana"))
    for batch in range(29):
        await _sent(store, _postings(f"busy-{batch}", 100), busy)
    await _statistics_as_autovacuum_keeps_them(store)
    behind = await _work_of(store, dead_targets_statement("ana"))

    assert behind < 3 * alone, (alone, behind)  # 30 times the others' alerts: not 30 times
    [dead] = await store.target_state.dead(owner="ana")
    assert (dead.target_id, dead.dead) == (ana.target_ids[0], 5)
