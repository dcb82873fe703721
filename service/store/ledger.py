"""The delivery ledger: one row per (event, target), unique.

Recording a batch that Kafka delivers again is a no-op, and a row outlives any crash until it is
sent or declared dead. Workers claim due rows with a short lease that they renew while a send
is alive (FOR UPDATE SKIP LOCKED on PostgreSQL), so instances sharing one store never send the
same alert twice, and alerts a crashed worker held are claimed again within one lease. What the
delivery stages decide is written back in batches (`apply`), one transaction for many alerts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple, get_args

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    RowMapping,
    Select,
    Table,
    Update,
    bindparam,
    func,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from consumers.events import AnyEvent, Event, stored_json
from service.matching import search_text
from service.redaction import shown_error
from service.store.bulk import (
    DeliveryRow,
    EventRow,
    both_to_their_end,
    insert_deliveries,
    insert_events,
    wants_copy,
    wants_helper,
)
from service.store.crypto import Sealer
from service.store.engine import by_itself, transaction
from service.store.schema import deliveries, events, subscriptions, targets, utcnow

DeliveryStatus = Literal["pending", "sending", "sent", "dead"]
# Every status, in the order a ledger is told: what is to come, then what is done.
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = get_args(DeliveryStatus)


class Match(NamedTuple):
    """An event that a subscription wants, to be sent to each of its targets: at once, or at
    `due` (a digest's time, or the end of quiet hours) as part of a digest. A named tuple: a
    batch makes one per match, 50,000 at fan-out 100, and a tuple is the cheapest to build."""

    subscription_id: str
    event: Event
    target_ids: Sequence[int]
    due: datetime | None = None
    digest: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """One ledger row: one alert for one target (`target` is its URL, to be shown masked)."""

    id: int
    subscription_id: str
    target_id: int
    target: str
    event_kind: str
    event_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    digest: bool = False
    digest_id: int | None = None
    # What the target's sends go through beside its URL ("" for nothing; service/own_mail.py).
    sent_via: str = ""

    @property
    def shown_error(self) -> str | None:
        """`last_error` to show anyone (service/redaction.py)."""
        return shown_error(self.last_error, self.target)


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery claimed for sending, with what rendering and sending need."""

    delivery: Delivery
    event: Event
    subscription_name: str
    scheme: str
    # The event's Kafka timestamp, where the alert's latency starts (None: not known).
    kafka_timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ClaimedDigest:
    """Every due digest row of one target, claimed together: one message, newest first."""

    digest_id: int
    items: list[ClaimedDelivery]


@dataclass
class Outcomes:
    """What the delivery stages decided for a batch of claimed alerts, written in one go."""

    sent: list[tuple[int, datetime]] = field(default_factory=list)
    retry: list[tuple[int, datetime, str]] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)
    # Given back untried (their target is held): the claim's attempt does not count.
    deferred: list[tuple[int, datetime]] = field(default_factory=list)
    # A failing target's waiting alerts are due when its hold ends (no sooner, no later), when
    # one of them probes it; waiting uses no attempts.
    held_targets: dict[int, datetime] = field(default_factory=dict)
    # A target that failed every attempt: its waiting alerts die with the reason.
    dead_targets: dict[int, str] = field(default_factory=dict)
    # A held target that answered again: its waiting alerts are due now.
    resumed_targets: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return any(
            (
                self.sent,
                self.retry,
                self.dead,
                self.deferred,
                self.held_targets,
                self.dead_targets,
                self.resumed_targets,
            )
        )


def _targets_of(subscription_ids: Any) -> Select[tuple[int]]:
    """The ids of the subscriptions' targets: how the ledger is searched by subscription (its
    index is by target, and a subscription has few)."""
    return select(targets.c.id).where(targets.c.subscription_id.in_(subscription_ids))


def _due(now: datetime) -> ColumnElement[bool]:
    """Pending and due, or claimed by a worker whose lease ran out (it crashed)."""
    return or_(
        (deliveries.c.status == "pending") & (deliveries.c.next_attempt_at <= now),
        (deliveries.c.status == "sending") & (deliveries.c.claimed_until < now),
    )


def claim_statement(
    now: datetime,
    limit: int,
    lease_s: float,
    skip_targets: Collection[int] = (),
    skip_via: Collection[str] = (),
    only_targets: Collection[int] = (),
    only_via: str = "",
) -> Update:
    """`Ledger.claim`'s statement: the ids of up to `limit` due alerts, marked as sending
    under a lease of `lease_s` (tests read its plan)."""
    wanted: list[ColumnElement[bool]] = [deliveries.c.digest.is_(False)]
    if skip_targets:
        wanted.append(deliveries.c.target_id.not_in(sorted(skip_targets)))
    if skip_via:
        routed = select(targets.c.id).where(targets.c.sent_via.in_(sorted(skip_via)))
        wanted.append(deliveries.c.target_id.not_in(routed.scalar_subquery()))
    if only_targets:
        wanted.append(deliveries.c.target_id.in_(sorted(only_targets)))
    if only_via:
        routed = select(targets.c.id).where(targets.c.sent_via == only_via)
        wanted.append(deliveries.c.target_id.in_(routed.scalar_subquery()))
    # The due rows of each status, each read in the order of `ix_deliveries_due` and only
    # as far as `limit`, then the first `limit` of the two. Asked as one condition
    # (`_due`), both stores gathered every due row and sorted them all for each claim:
    # with 100,000 alerts waiting a claim took 30-64 ms on SQLite, on the loop's thread,
    # and 54-68 ms on PostgreSQL; the larger the backlog, the slower it drained. Now 6-15
    # and 9-20 ms. (PostgreSQL reads in order once its statistics say the table is large,
    # as autovacuum keeps them, and reads a whole batch's rows that are due at the same
    # moment to order them by id. The rows one branch locked and the claim does not take
    # are free again at its commit.)
    pending = _due_in_order(
        limit,
        deliveries.c.status == "pending",
        deliveries.c.next_attempt_at <= now,
        *wanted,
    )
    lease_ended = _due_in_order(
        limit,
        deliveries.c.status == "sending",
        deliveries.c.claimed_until < now,
        *wanted,
    )
    both = union_all(pending, lease_ended).subquery("due")
    due = select(both.c.id).order_by(both.c.next_attempt_at, both.c.id).limit(limit)
    return (
        update(deliveries)
        .where(deliveries.c.id.in_(due.scalar_subquery()))
        .values(
            status="sending",
            attempts=deliveries.c.attempts + 1,
            claimed_until=now + timedelta(seconds=lease_s),
        )
        .returning(deliveries.c.id)
    )


def _due_in_order(limit: int, *conditions: ColumnElement[bool]) -> Select[tuple[int, datetime]]:
    """The first `limit` rows meeting `conditions` (one status among them) by when they are
    due, locked for this claim (PostgreSQL; another worker's claim passes over them)."""
    inner = (
        select(deliveries.c.id, deliveries.c.next_attempt_at)
        .where(*conditions)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .subquery()
    )
    return select(inner.c.id, inner.c.next_attempt_at)


def _claimed_rows(conn: Connection, ids: list[int]) -> Sequence[RowMapping]:
    """What the worker needs of claimed rows: the row, its target, its subscription's name and
    its event."""
    return (
        conn.execute(_with_what_sending_needs(deliveries).where(deliveries.c.id.in_(ids)))
        .mappings()
        .all()
    )


def _with_what_sending_needs(rows: Table | CTE) -> Select[Any]:
    """`rows` of the ledger (the table, or the rows a claim just took) with their target,
    their subscription's name and their event, in the order of their ids."""
    return (
        select(
            *rows.c,
            targets.c.subscription_id,
            targets.c.url,
            targets.c.scheme,
            targets.c.sent_via,
            subscriptions.c.name,
            events.c.payload,
            events.c.kafka_timestamp_ms,
        )
        .select_from(rows)
        .join(targets, targets.c.id == rows.c.target_id)
        .join(events, (events.c.kind == rows.c.event_kind) & (events.c.id == rows.c.event_id))
        .outerjoin(subscriptions, subscriptions.c.id == targets.c.subscription_id)
        .order_by(rows.c.id)
    )


def claim_with_rows(claim: Update) -> Select[Any]:
    """PostgreSQL: a claim (`claim_statement`) and the read of what it took as one statement,
    run by itself: one round trip to the server where BEGIN, the claim, the read and COMMIT
    were four, each waiting for a turn of a busy event loop."""
    others = [column for column in deliveries.c if column.key != "id"]
    return _with_what_sending_needs(claim.returning(*others).cte("claimed"))


class Recording(NamedTuple):
    """A batch as the ledger will write it: built apart from the write (`Ledger.write`), so
    the consumer can build the next batch's rows while this one is written."""

    events: list[EventRow]
    deliveries: list[DeliveryRow]
    at: datetime

    @classmethod
    def of(
        cls,
        batch: Sequence[Event],
        deliveries: list[DeliveryRow],
        at: datetime,
        kafka_timestamps_ms: Sequence[int] = (),
    ) -> Recording:
        """`kafka_timestamps_ms`: as `add_event_rows` takes them."""
        event_rows: EventRows = {}
        add_event_rows(event_rows, batch, at, kafka_timestamps_ms)
        return cls(list(event_rows.values()), deliveries, at)

    def all_new(self, new_events: set[tuple[str, str]]) -> bool:
        """Whether `new_events` (those `insert_events` found new) are all of the batch's, as
        they are unless Kafka delivered it again: then no row need be looked up in them."""
        return len(new_events) == len(self.events)


# A batch's event rows by (kind, id): an event twice in a batch is one row.
EventRows = dict[tuple[str, str], EventRow]


def add_event_rows(
    into: EventRows,
    batch: Sequence[Event],
    at: datetime,
    kafka_timestamps_ms: Sequence[int] = (),
) -> None:
    """Add the store's rows of `batch`, with each event's Kafka timestamp in the batch's order
    (none given, or one of 0 or less: not known)."""
    stamps = kafka_timestamps_ms or [0] * len(batch)
    into.update(
        (
            (ev.kind, ev.id),
            (
                ev.kind,
                ev.id,
                stored_json(ev),
                at,
                search_text(ev),
                stamp if stamp > 0 else None,
            ),
        )
        for ev, stamp in zip(batch, stamps, strict=True)
    )


# How long a batch's write on PostgreSQL waits for rows another transaction holds before it
# fails, and the batch is read again after the consumer's restart. Each write commits in a
# fixed order across its two connections, and two instances recording the same events at
# once (a rebalance's overlap) with different orders, one batch past SPLIT_ROWS and one
# below, could each wait for the other for good: PostgreSQL sees only the half of that
# cycle inside the database, so it never breaks it. Any honest wait is far shorter.
WRITE_LOCK_TIMEOUT_MS = 30_000


async def _bound_lock_waits(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(f"SET LOCAL lock_timeout = {WRITE_LOCK_TIMEOUT_MS}")


def _each_row(**values: Any) -> Update:
    """An outcome's UPDATE of its ledger rows, one by id (`row`) for each of them; built once,
    not for every batch of outcomes, so SQLAlchemy finds it compiled without making its cache
    key again."""
    return (
        update(deliveries)
        .where(deliveries.c.id == bindparam("row"))
        .values(claimed_until=None, **values)
    )


_SENT = _each_row(status="sent", sent_at=bindparam("at"))
_RETRY = _each_row(status="pending", next_attempt_at=bindparam("at"), last_error=bindparam("error"))
# A deferral is not an attempt: the claim counted one.
_DEFERRED = _each_row(
    status="pending", next_attempt_at=bindparam("at"), attempts=deliveries.c.attempts - 1
)
_DEAD = _each_row(status="dead", last_error=bindparam("error"))


def _apply(conn: Connection, outcomes: Outcomes) -> dict[int, int]:
    """Ledger.apply's transaction."""
    also_dead: dict[int, int] = {}
    if outcomes.sent:
        conn.execute(_SENT, [{"row": row, "at": at} for row, at in outcomes.sent])
    if outcomes.retry:
        conn.execute(_RETRY, [{"row": r, "at": at, "error": e} for r, at, e in outcomes.retry])
    if outcomes.deferred:
        conn.execute(_DEFERRED, [{"row": row, "at": at} for row, at in outcomes.deferred])
    if outcomes.dead:
        conn.execute(_DEAD, [{"row": row, "error": error} for row, error in outcomes.dead])
    for target_id, until in outcomes.held_targets.items():
        conn.execute(
            update(deliveries)
            .where(deliveries.c.target_id == target_id, deliveries.c.status == "pending")
            .values(next_attempt_at=until)
        )
    for target_id, error in outcomes.dead_targets.items():
        result = conn.execute(
            update(deliveries)
            .where(deliveries.c.target_id == target_id, deliveries.c.status == "pending")
            .values(status="dead", last_error=error)
        )
        also_dead[target_id] = result.rowcount
    if outcomes.resumed_targets:
        now = utcnow()
        conn.execute(
            update(deliveries)
            .where(
                deliveries.c.target_id.in_(outcomes.resumed_targets),
                deliveries.c.status == "pending",
                deliveries.c.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
        )
    return also_dead


class Ledger:
    def __init__(self, engine: AsyncEngine, sealer: Sealer) -> None:
        self.engine = engine
        self.sealer = sealer

    async def record(
        self,
        batch: Sequence[Event],
        matches: Iterable[Match],
        kafka_timestamps_ms: Sequence[int] = (),
    ) -> int:
        """Make a batch durable: every event (kept as a recent event, for previews and for
        rendering its alerts) and one pending row per match and target. Rows already recorded
        are left as they are, so a batch Kafka delivers again changes nothing.

        Returns how many new alerts were recorded. (The pipeline builds its rows itself, see
        `Recording`; this is the same write for a list of matches.)
        """
        rows: list[DeliveryRow] = [
            (target_id, event.kind, event.id, due, digest)
            for _, event, target_ids, due, digest in matches
            for target_id in target_ids
        ]
        return await self.write(Recording.of(batch, rows, utcnow(), kafka_timestamps_ms))

    async def write(self, recording: Recording) -> int:
        """Write a batch's events and ledger rows; returns how many of the rows were new. No
        ledger row is ever committed without its event."""
        if not recording.events:
            return 0
        dialect = self.engine.dialect.name
        if dialect == "postgresql" and wants_copy(recording.deliveries):
            if not wants_helper(dialect, recording.deliveries):
                return await self._write_beside(recording)
            return await self._write_split(recording)
        async with self._writing() as conn:
            new_events = await insert_events(conn, recording.events)
            return await insert_deliveries(
                conn,
                recording.deliveries,
                recording.at,
                new_events,
                every_event_new=recording.all_new(new_events),
            )

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A transaction of a batch's write: on PostgreSQL its waits for rows other
        transactions hold are bounded (WRITE_LOCK_TIMEOUT_MS)."""
        async with self.engine.begin() as conn:
            await _bound_lock_waits(conn)
            yield conn

    async def _write_split(self, recording: Recording) -> int:
        """PostgreSQL, a batch of SPLIT_ROWS rows or more (bulk.py)."""
        # Half of the rows go in on a second connection (bulk.py), committed only after the
        # batch's own transaction: no ledger row is ever committed without its event. If the
        # batch's transaction fails, leaving the block rolls the helper's half back too.
        async with self.engine.connect() as helper:
            await helper.begin()
            await _bound_lock_waits(helper)
            async with self._writing() as conn:
                new_events = await insert_events(conn, recording.events)
                written = await insert_deliveries(
                    conn,
                    recording.deliveries,
                    recording.at,
                    new_events,
                    helper,
                    every_event_new=recording.all_new(new_events),
                )
            await helper.commit()
        return written

    async def _write_beside(self, recording: Recording) -> int:
        """PostgreSQL, a batch of COPY_ROWS to SPLIT_ROWS rows: its events go in, and are
        committed, on a second connection at the same time as its ledger rows' `COPY` on the
        first, instead of one after the other (5,000 events at fan-out 1: 55 ms and 32 ms
        alone, 89 ms for the batch; 70 ms this way).

        The `COPY` takes every row as new, as it is unless Kafka delivered the batch again
        (or retention removed an event whose alerts stayed); then it fails, under its
        savepoint, and every row takes the `INSERT` that skips those there. The rows commit
        after the events, so no ledger row is ever committed without its event; if the rows
        then fail, the batch is recorded again, and finds its events there already. The
        events' transaction waits for nothing of this batch's, so two instances recording the
        same events at once this way cannot each wait for the other (for a mix of this way
        and the split one, see WRITE_LOCK_TIMEOUT_MS).
        """
        every_event = {(kind, event_id) for kind, event_id, *_ in recording.events}
        async with self._writing() as conn:
            _, written = await both_to_their_end(
                self._commit_events(recording.events),
                insert_deliveries(
                    conn, recording.deliveries, recording.at, every_event, every_event_new=True
                ),
            )
        return written

    async def _commit_events(self, rows: Sequence[EventRow]) -> None:
        async with self._writing() as conn:
            await insert_events(conn, rows)

    async def claim(
        self,
        limit: int,
        lease_s: float,
        skip_targets: Collection[int] = (),
        skip_via: Collection[str] = (),
        only_targets: Collection[int] = (),
        only_via: str = "",
    ) -> list[ClaimedDelivery]:
        """Take up to `limit` due alerts (not digest rows) for sending, safely beside other
        workers, none for `skip_targets` or for targets sent through one of `skip_via` (what
        the worker already has a backlog of in memory: their rows stay here, in order, and
        the claim takes others' instead); with `only_targets` or `only_via`, only theirs (a
        busy target's or server's next rows, claimed for it alone).

        A claim is a lease: if the worker dies, the row is due again when the lease ends.
        """
        claim = claim_statement(
            utcnow(), limit, lease_s, skip_targets, skip_via, only_targets, only_via
        )

        if self.engine.dialect.name == "postgresql":
            taken = claim_with_rows(claim)
            rows = await by_itself(self.engine, lambda conn: conn.execute(taken).mappings().all())
            return self._claimed(rows)

        def claim_whole(conn: Connection) -> Sequence[RowMapping]:
            ids = list(conn.execute(claim).scalars())
            return _claimed_rows(conn, ids) if ids else []

        # Passing over busy targets' rows may mean reading through thousands of them.
        small = not (skip_targets or skip_via)
        rows = await transaction(self.engine, claim_whole, small=small)
        return self._claimed(rows)  # after the transaction (see `_claimed`)

    async def claim_digests(self, limit: int, lease_s: float) -> list[ClaimedDigest]:
        """Take up to `limit` due digests: for each target, every due digest row at once, under
        one lease, as one digest named by its first row's id.

        Rows another worker claimed meanwhile are skipped (their status is no longer pending),
        so a digest is never sent twice, except after a crash ends its lease.
        """
        now = utcnow()
        targets_due = (
            select(deliveries.c.target_id)
            .where(_due(now), deliveries.c.digest.is_(True))
            .group_by(deliveries.c.target_id)
            .order_by(func.min(deliveries.c.next_attempt_at))
            .limit(limit)
        )
        async with self.engine.begin() as conn:
            chosen = list((await conn.execute(targets_due)).scalars())
            if not chosen:
                return []
            claimed = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.target_id.in_(chosen),
                    deliveries.c.digest.is_(True),
                    _due(now),
                )
                .values(
                    status="sending",
                    attempts=deliveries.c.attempts + 1,
                    claimed_until=now + timedelta(seconds=lease_s),
                )
                .returning(deliveries.c.id, deliveries.c.target_id)
            )
            by_target: dict[int, list[int]] = {}
            for row_id, target_id in claimed.all():
                by_target.setdefault(target_id, []).append(row_id)
            for ids in by_target.values():
                await conn.execute(
                    update(deliveries).where(deliveries.c.id.in_(ids)).values(digest_id=min(ids))
                )
            rows = await conn.run_sync(
                _claimed_rows, sorted(i for v in by_target.values() for i in v)
            )
        items: dict[int, list[ClaimedDelivery]] = {}
        for row in self._claimed(rows):  # one pass: a digest can hold thousands of rows
            items.setdefault(row.delivery.target_id, []).append(row)
        return [
            ClaimedDigest(digest_id=min(ids), items=items[target_id])
            for target_id, ids in by_target.items()
        ]

    def _claimed(self, rows: Sequence[RowMapping]) -> list[ClaimedDelivery]:
        """The claimed rows as the worker takes them. Done after the claim's transaction has
        ended: parsing every event and opening every target here, with the transaction still
        open, held SQLite's one write lock over it, and the consumer's next ledger write and
        the record of sends waited for it."""
        return [
            ClaimedDelivery(
                delivery=self._delivery(row),
                event=AnyEvent.validate_python(row["payload"]),
                subscription_name=row["name"] or "",
                scheme=row["scheme"],
                kafka_timestamp_ms=row["kafka_timestamp_ms"],
            )
            for row in rows
        ]

    async def renew(self, delivery_ids: Sequence[int], lease_s: float) -> None:
        """Extend the lease of alerts still being sent, so a short lease never runs out under a
        slow send while a crashed worker's alerts come back quickly."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(delivery_ids), deliveries.c.status == "sending")
                .values(claimed_until=utcnow() + timedelta(seconds=lease_s))
            )

    async def apply(self, outcomes: Outcomes) -> dict[int, int]:
        """Write what the delivery stages decided, in one transaction; returns how many waiting
        alerts died with each target that died."""
        # A target's waiting alerts, which a target's outcome changes, may be thousands of rows.
        small = not (outcomes.held_targets or outcomes.dead_targets or outcomes.resumed_targets)
        kinds = (outcomes.sent, outcomes.retry, outcomes.deferred, outcomes.dead)
        one_statement = small and sum(1 for rows in kinds if rows) == 1
        if one_statement and self.engine.dialect.name == "postgresql":
            # One statement (the usual case: alerts sent), whole by itself (asyncpg's
            # `executemany` is atomic): no BEGIN and COMMIT round trips around it.
            return await by_itself(self.engine, lambda conn: _apply(conn, outcomes))
        return await transaction(self.engine, lambda conn: _apply(conn, outcomes), small=small)

    async def send_digests_now(self, subscription_id: str | None = None) -> int:
        """Make every waiting digest row due now (of one subscription, or of all); returns
        how many rows. The running service sends them at its next look."""
        query = update(deliveries).where(
            deliveries.c.digest.is_(True), deliveries.c.status == "pending"
        )
        if subscription_id is not None:
            query = query.where(deliveries.c.target_id.in_(_targets_of([subscription_id])))
        async with self.engine.begin() as conn:
            result = await conn.execute(query.values(next_attempt_at=utcnow()))
        return result.rowcount

    async def release(self, delivery_ids: Sequence[int]) -> None:
        """Give claimed alerts back unsent (a busy target's overflow, or at a stop), due at
        once in their place: a claim leaves `next_attempt_at` as it was, and it was due, so
        they go ahead of the same target's later alerts. The attempt is not counted."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(delivery_ids), deliveries.c.status == "sending")
                .values(status="pending", claimed_until=None, attempts=deliveries.c.attempts - 1)
            )

    async def recent(
        self,
        status: DeliveryStatus | None = None,
        subscription_id: str | None = None,
        limit: int | None = 1000,
        owner: str | None = None,
    ) -> list[Delivery]:
        """Ledger rows, newest first: of one subscription, or of every subscription one user
        owns (deleted ones included: they are still that user's data)."""
        query = (
            select(*deliveries.c, targets.c.subscription_id, targets.c.url)
            .join(targets, targets.c.id == deliveries.c.target_id)
            .order_by(deliveries.c.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(deliveries.c.status == status)
        if subscription_id is not None:
            query = query.where(targets.c.subscription_id == subscription_id)
        if owner is not None:
            owned = select(subscriptions.c.id).where(subscriptions.c.owner == owner)
            query = query.where(targets.c.subscription_id.in_(owned))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [self._delivery(row) for row in rows]

    async def counts(self) -> dict[str, int]:
        query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        async with self.engine.connect() as conn:
            return {status: int(n) for status, n in (await conn.execute(query)).all()}

    async def requeue(self, delivery_ids: Sequence[int] | None = None) -> int:
        """Send dead alerts again: the given ones, or every dead one when None. Alerts whose
        target was removed from its subscription, or whose subscription is paused or deleted,
        stay dead."""
        wanted = select(subscriptions.c.id).where(
            subscriptions.c.active.is_(True), subscriptions.c.deleted.is_(False)
        )
        live = select(targets.c.id).where(
            targets.c.removed.is_(False), targets.c.subscription_id.in_(wanted)
        )
        query = update(deliveries).where(
            deliveries.c.status == "dead", deliveries.c.target_id.in_(live)
        )
        if delivery_ids is not None:
            query = query.where(deliveries.c.id.in_(delivery_ids))
        async with self.engine.begin() as conn:
            result = await conn.execute(
                query.values(status="pending", attempts=0, next_attempt_at=utcnow())
            )
        return result.rowcount

    def _delivery(self, row: Any) -> Delivery:
        return Delivery(
            id=row["id"],
            subscription_id=row["subscription_id"],
            target_id=row["target_id"],
            target=self.sealer.open(row["url"]),
            event_kind=row["event_kind"],
            event_id=row["event_id"],
            status=row["status"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            created_at=row["created_at"],
            sent_at=row["sent_at"],
            digest=row["digest"],
            digest_id=row["digest_id"],
            sent_via=row.get("sent_via") or "",
        )
