"""What the store keeps and for how long: recent events, previews, retention, a user's data."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import update

from config.settings import RetentionSettings
from consumers.events import Event, JobPosting
from service import personal_data
from service.accounts import add_user
from service.offline import match_files
from service.preview import recent_matches
from service.store import Match, Store, utcnow
from service.store.ledger import Outcomes
from service.store.retention import Retention
from service.store.schema import deliveries, events, subscriptions, target_notices, targets
from service.subscriptions import Criteria, SubscriptionIn
from tests.conftest import SAMPLES

PASSWORD = "s3cret-pass"
TARGET = f"mailtos://ana:{PASSWORD}@mail.example.com?to=ana@example.com"
OTHER = "json://hooks.example.com/ana"
DAY = timedelta(days=1)


@pytest.fixture
def store(store_of_each_kind: Store) -> Store:
    return store_of_each_kind


def spec(**fields: object) -> SubscriptionIn:
    return SubscriptionIn.model_validate({"notify": [TARGET], **fields})


async def age(store: Store, table: object, days: float, **where: object) -> None:
    """Move rows back in time, as if they had been written `days` ago."""
    moment = utcnow() - timedelta(days=days)
    column = {
        events: "received_at",
        deliveries: "next_attempt_at",
        subscriptions: "updated_at",
    }[table]  # type: ignore[index]
    query = update(table).values({column: moment})  # type: ignore[arg-type]
    for name, value in where.items():
        query = query.where(getattr(table.c, name) == value)  # type: ignore[attr-defined]
    async with store.engine.begin() as conn:
        await conn.execute(query)


async def test_every_event_is_kept_not_only_the_matched_ones(
    store: Store, sample_events: list[Event]
) -> None:
    assert await store.ledger.record(sample_events, []) == 0  # nobody subscribed yet
    found = await recent_matches(store, Criteria(employers=["Ross"]), days=7)
    ross = [e.id for e in sample_events if isinstance(e, JobPosting) and "ROSS" in e.employer]
    assert ross
    assert sorted(e.id for e in found) == sorted(ross)


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"employers": ["NORDSTROM"], "cities": ["Portland"]}, 2),
        ({"titles": ["Store Protection Specialist"], "cities": ["Dallas"]}, 1),
        ({"employers": ["MACY'S"]}, 6),
        ({"employers": ["Tencent"], "kinds": ["article"]}, 1),
        ({"cities": ["hong kong"]}, 1),
        ({"employers": ["Nordstrom Rack"]}, 0),
    ],
)
async def test_the_preview_finds_what_the_matcher_finds_in_the_samples(
    store: Store,
    sample_events: list[Event],
    tmp_path: Path,
    criteria: dict[str, object],
    expected: int,
) -> None:
    await store.ledger.record(sample_events, [])
    found = await recent_matches(store, Criteria.model_validate(criteria), days=7)
    assert len(found) == expected
    # The same answer as matching the sample file itself with the service's matcher.
    subs = tmp_path / "subs.json"
    subs.write_bytes(orjson.dumps([{"id": "s", **criteria}]))
    assert {e.id for e in found} == {event_id for event_id, _ in match_files(subs, SAMPLES)}


async def test_the_preview_looks_back_only_as_far_as_asked(
    store: Store, sample_events: list[Event]
) -> None:
    await store.ledger.record(sample_events, [])
    macys = [e.id for e in sample_events if isinstance(e, JobPosting) and "MACY" in e.employer]
    await age(store, events, days=3, id=macys[0])
    wanted = Criteria(employers=["MACY'S"])
    assert len(await recent_matches(store, wanted, days=7)) == 6
    assert len(await recent_matches(store, wanted, days=2)) == 5


async def test_retention_deletes_old_sent_and_dead_alerts_and_unneeded_events_only(
    store: Store, sample_events: list[Event]
) -> None:
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    old_sent, old_dead, old_pending, new_sent = sample_events[:4]
    unneeded, still_needed = sample_events[4:6]
    await store.ledger.record(
        sample_events[:6],
        [Match(sub.id, e, sub.target_ids) for e in (old_sent, old_dead, old_pending, new_sent)],
    )
    rows = {d.event_id: d.id for d in await store.ledger.recent()}
    now = utcnow()
    await store.ledger.apply(
        Outcomes(
            sent=[(rows[old_sent.id], now), (rows[new_sent.id], now)],
            dead=[(rows[old_dead.id], "gone")],
        )
    )
    for event in (old_sent, old_dead, old_pending):
        await age(store, deliveries, days=31, event_id=event.id)
    for event in (old_sent, old_dead, old_pending, unneeded, still_needed):
        await age(store, events, days=8, id=event.id)
    gone = await store.subscriptions.add(spec(cities=["Dallas"]))
    await store.subscriptions.delete(gone.id)
    await age(store, subscriptions, days=2, id=gone.id)
    await store.ledger.record([still_needed], [Match(sub.id, still_needed, sub.target_ids)])
    await age(store, events, days=8, id=still_needed.id)

    pruned = await Retention(store.engine, RetentionSettings(batch_size=1)).prune()

    assert (pruned.deliveries, pruned.events, pruned.subscriptions) == (2, 3, 1)
    left = {d.event_id: d.status for d in await store.ledger.recent()}
    assert left == {old_pending.id: "pending", new_sent.id: "sent", still_needed.id: "pending"}
    claimed = await store.ledger.claim(10, lease_s=60)  # the kept alerts still render
    assert {c.event.id for c in claimed} == {old_pending.id, still_needed.id}
    assert [s.id for s in await store.subscriptions.all()] == [sub.id]
    assert not await Retention(store.engine, RetentionSettings()).prune()  # nothing more


async def test_a_user_exports_their_data_and_erasing_it_leaves_nothing_of_theirs(
    store: Store, sample_events: list[Event]
) -> None:
    created = await add_user(store, "ana@example.com")
    assert created is not None
    ana, _ = created
    mine = await store.subscriptions.add(spec(employers=["NORDSTROM"], name="AP"), owner=ana.id)
    theirs = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    # Each of them has an alert sent and one waiting (the ledger finds the two by target
    # through two different indexes).
    await store.ledger.record(
        sample_events[:2],
        [Match(s.id, e, s.target_ids) for s in (mine, theirs) for e in sample_events[:2]],
    )
    first = [d.id for d in await store.ledger.recent() if d.event_id == sample_events[0].id]
    await store.ledger.apply(Outcomes(sent=[(row, utcnow()) for row in first]))

    masked = await personal_data.export(store, ana)
    assert [s["id"] for s in masked["subscriptions"]] == [mine.id]
    assert [d["subscription_id"] for d in masked["deliveries"]] == [mine.id, mine.id]
    assert PASSWORD not in str(masked)
    full = await personal_data.export(store, ana, full_targets=True)
    assert full["subscriptions"][0]["notify"] == [TARGET]
    assert full["deliveries"][0]["target"] == TARGET

    # A meta-alert told her about a dead target once: that memory goes with the target.
    assert await store.target_state.claim_dead_notice(mine.target_ids[0], utcnow(), DAY)
    erased = await personal_data.erase(store, ana.id)
    assert erased is not None
    assert (erased.subscriptions, erased.deliveries) == (1, 2)
    assert await store.accounts.by_id(ana.id) is None
    assert await store.subscriptions.get(mine.id) is None
    assert [d.subscription_id for d in await store.ledger.recent()] == [theirs.id, theirs.id]
    async with store.engine.connect() as conn:
        rows = (await conn.execute(subscriptions.select())).mappings().all()
    tombstone = next(row for row in rows if row["id"] == mine.id)
    assert (tombstone["name"], tombstone["employers"], tombstone["owner"]) == ("", [], None)
    async with store.engine.connect() as conn:
        left = (await conn.execute(targets.select())).mappings().all()
    assert [row["subscription_id"] for row in left] == [theirs.id]
    async with store.engine.connect() as conn:
        assert (await conn.execute(target_notices.select())).all() == []
    changes, _ = await store.subscriptions.changes(None)
    assert (mine.id, False) in {(c.id, c.wanted) for c in changes}


async def test_retention_forgets_what_meta_alerts_told_of_a_target_with_the_target(
    store: Store,
) -> None:
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    (dropped,) = sub.target_ids
    assert await store.target_state.claim_dead_notice(dropped, utcnow(), DAY)
    # The owner replaces the dead target: it is removed, and no alert names it.
    await store.subscriptions.update(sub.id, spec(employers=["NORDSTROM"], notify=[OTHER]))

    pruned = await Retention(store.engine, RetentionSettings()).prune()

    assert (pruned.targets, pruned.notices) == (1, 1)
    async with store.engine.connect() as conn:
        assert (await conn.execute(target_notices.select())).all() == []
        (kept,) = (await conn.execute(targets.select())).mappings().all()
    assert kept["url"] == OTHER


async def test_retention_keeps_a_removed_target_and_a_deleted_subscription_while_an_alert_waits(
    store: Store, sample_events: list[Event]
) -> None:
    """An instance whose matcher has not yet seen a change records alerts for a target just
    removed, or a subscription just deleted: they must still be sent, so retention keeps what
    they name until they are."""
    sub = await store.subscriptions.add(spec(employers=["NORDSTROM"]))
    (removed,) = sub.target_ids
    await store.subscriptions.update(sub.id, spec(employers=["NORDSTROM"], notify=[OTHER]))
    gone = await store.subscriptions.add(spec(cities=["Dallas"]))
    await store.subscriptions.delete(gone.id)
    await age(store, subscriptions, days=2, id=gone.id)
    late, later = sample_events[:2]
    await store.ledger.record(
        [late, later], [Match(sub.id, late, [removed]), Match(gone.id, later, gone.target_ids)]
    )

    kept = await Retention(store.engine, RetentionSettings()).prune()

    assert (kept.targets, kept.subscriptions) == (0, 0)
    claimed = await store.ledger.claim(10, lease_s=60)
    assert {c.event.id for c in claimed} == {late.id, later.id}
    await store.ledger.apply(Outcomes(sent=[(c.delivery.id, utcnow()) for c in claimed]))
    # Sent, they stay in the ledger a month, and name their target and subscription.
    sent = await Retention(store.engine, RetentionSettings()).prune()
    assert (sent.targets, sent.subscriptions) == (0, 0)
    await age(store, deliveries, days=31)
    pruned = await Retention(store.engine, RetentionSettings()).prune()
    assert (pruned.deliveries, pruned.targets, pruned.subscriptions) == (2, 2, 1)
