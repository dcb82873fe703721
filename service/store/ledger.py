"""The delivery ledger: one row per (subscription, event, target), unique.

Recording a batch that Kafka delivers again is a no-op, and a row outlives any crash until it is
sent or declared dead. Workers claim due rows with a lease (FOR UPDATE SKIP LOCKED on
PostgreSQL), so instances sharing one store never send the same alert twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from consumers.events import AnyEvent, Event
from service.matching import search_text
from service.store.engine import insert
from service.store.schema import deliveries, events, subscriptions, utcnow

DeliveryStatus = Literal["pending", "sending", "sent", "dead"]


@dataclass(frozen=True, slots=True)
class Match:
    """An event that a subscription wants, to be sent to each of its targets."""

    subscription_id: str
    event: Event
    targets: Sequence[str]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One ledger row: one alert for one target."""

    id: int
    subscription_id: str
    event_kind: str
    event_id: str
    target: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery claimed for sending, with what rendering needs."""

    delivery: Delivery
    event: Event
    subscription_name: str


class Ledger:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = insert(engine)

    async def record(self, batch: Sequence[Event], matches: Iterable[Match]) -> int:
        """Make a batch durable: every event (kept as a recent event, for previews and for
        rendering its alerts) and one pending row per match and target. Rows already recorded
        are left as they are, so a batch Kafka delivers again changes nothing.

        Returns how many new alerts were recorded.
        """
        now = utcnow()
        event_rows = {
            (ev.kind, ev.id): {
                "kind": ev.kind,
                "id": ev.id,
                "payload": ev.model_dump(mode="json"),
                "received_at": now,
                "search": search_text(ev),
            }
            for ev in batch
        }
        delivery_rows = [
            {
                "subscription_id": match.subscription_id,
                "event_kind": match.event.kind,
                "event_id": match.event.id,
                "target": target,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for match in matches
            for target in match.targets
        ]
        if not event_rows:
            return 0
        async with self.engine.begin() as conn:
            await conn.execute(
                self._insert(events).on_conflict_do_nothing(), list(event_rows.values())
            )
            if not delivery_rows:
                return 0
            # RETURNING, because drivers disagree on rowcount for a bulk insert.
            inserted = await conn.execute(
                self._insert(deliveries).on_conflict_do_nothing().returning(deliveries.c.id),
                delivery_rows,
            )
            return len(inserted.all())

    async def claim(self, limit: int, lease_s: float) -> list[ClaimedDelivery]:
        """Take up to `limit` due alerts for sending, safely beside other workers.

        A claim is a lease: if the worker dies, the row is due again when the lease ends.
        """
        now = utcnow()
        due = (
            select(deliveries.c.id)
            .where(
                or_(
                    (deliveries.c.status == "pending") & (deliveries.c.next_attempt_at <= now),
                    (deliveries.c.status == "sending") & (deliveries.c.claimed_until < now),
                )
            )
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(deliveries)
            .where(deliveries.c.id.in_(due.scalar_subquery()))
            .values(
                status="sending",
                attempts=deliveries.c.attempts + 1,
                claimed_until=now + timedelta(seconds=lease_s),
            )
            .returning(*deliveries.c)
        )
        async with self.engine.begin() as conn:
            claimed = [_delivery(row) for row in (await conn.execute(claim)).mappings().all()]
            if not claimed:
                return []
            return await self._with_context(conn, claimed)

    async def _with_context(
        self, conn: AsyncConnection, claimed: list[Delivery]
    ) -> list[ClaimedDelivery]:
        keys = {(d.event_kind, d.event_id) for d in claimed}
        rows = await conn.execute(
            select(events.c.kind, events.c.id, events.c.payload).where(
                or_(*((events.c.kind == k) & (events.c.id == i) for k, i in keys))
            )
        )
        payloads = {(kind, ev_id): payload for kind, ev_id, payload in rows}
        names: dict[str, str] = {
            sub_id: name
            for sub_id, name in await conn.execute(
                select(subscriptions.c.id, subscriptions.c.name).where(
                    subscriptions.c.id.in_({d.subscription_id for d in claimed})
                )
            )
        }
        return [
            ClaimedDelivery(
                delivery=d,
                event=AnyEvent.validate_python(payloads[(d.event_kind, d.event_id)]),
                subscription_name=names.get(d.subscription_id, ""),
            )
            for d in claimed
        ]

    async def mark_sent(self, delivery_id: int) -> None:
        await self._finish(delivery_id, status="sent", sent_at=utcnow(), last_error=None)

    async def mark_retry(self, delivery_id: int, next_attempt_at: datetime, error: str) -> None:
        await self._finish(
            delivery_id, status="pending", next_attempt_at=next_attempt_at, last_error=error
        )

    async def postpone_target(self, target: str, until: datetime) -> None:
        """Hold back every pending alert to a target that just failed, so a target that is
        down is not hammered by its backlog; its alerts keep their attempt counts."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.target == target,
                    deliveries.c.status == "pending",
                    deliveries.c.next_attempt_at < until,
                )
                .values(next_attempt_at=until)
            )

    async def defer(self, delivery_id: int, until: datetime) -> None:
        """Put a claimed alert back untried (its target is held), without using an attempt."""
        await self._finish(
            delivery_id,
            status="pending",
            next_attempt_at=until,
            attempts=deliveries.c.attempts - 1,
        )

    async def release(self, delivery_ids: Sequence[int]) -> None:
        """Give claimed alerts back at shutdown so the next worker sends them at once."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(delivery_ids), deliveries.c.status == "sending")
                .values(
                    status="pending",
                    claimed_until=None,
                    attempts=deliveries.c.attempts - 1,
                    next_attempt_at=utcnow(),
                )
            )

    async def mark_target_dead(self, target: str, error: str) -> int:
        """Declare dead every waiting alert to a target that failed all its attempts."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(deliveries.c.target == target, deliveries.c.status == "pending")
                .values(status="dead", last_error=error)
            )
        return result.rowcount

    async def mark_dead(self, delivery_id: int, error: str) -> None:
        await self._finish(delivery_id, status="dead", last_error=error)

    async def _finish(self, delivery_id: int, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(claimed_until=None, **values)
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
        query = select(deliveries).order_by(deliveries.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(deliveries.c.status == status)
        if subscription_id is not None:
            query = query.where(deliveries.c.subscription_id == subscription_id)
        if owner is not None:
            owned = select(subscriptions.c.id).where(subscriptions.c.owner == owner)
            query = query.where(deliveries.c.subscription_id.in_(owned))
        async with self.engine.connect() as conn:
            return [_delivery(row) for row in (await conn.execute(query)).mappings().all()]

    async def counts(self) -> dict[str, int]:
        query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        async with self.engine.connect() as conn:
            return {status: int(n) for status, n in (await conn.execute(query)).all()}

    async def requeue(self, delivery_ids: Sequence[int] | None = None) -> int:
        """Send dead alerts again: the given ones, or every dead one when None."""
        query = update(deliveries).where(deliveries.c.status == "dead")
        if delivery_ids is not None:
            query = query.where(deliveries.c.id.in_(delivery_ids))
        async with self.engine.begin() as conn:
            result = await conn.execute(
                query.values(status="pending", attempts=0, next_attempt_at=utcnow())
            )
        return result.rowcount


def _delivery(row: Any) -> Delivery:
    return Delivery(**{f.name: row[f.name] for f in fields(Delivery)})
