"""Retention: delete, a little at a time, what nobody needs any more.

- sent and dead deliveries last attempted more than JOBWIRE_RETENTION__DELIVERIES_DAYS ago;
- events older than JOBWIRE_RETENTION__EVENTS_DAYS that no delivery still refers to (an event
  that a kept delivery needs stays as long as that delivery: it renders the alert);
- tombstones of deleted subscriptions, a day after the delete, once no delivery refers to them;
- targets removed from their subscription (or whose subscription is gone) that no alert names.

Pending and sending rows are never deleted. Each batch is one short transaction, with a pause
between batches, so on SQLite (one writer at a time) the pipeline's batches interleave with
pruning instead of waiting for it: bench/bench_retention.py measures ingest with and without.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import Delete, delete, exists, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import RetentionSettings
from consumers.pacing import wait_or_stop
from service.store.errors import explain
from service.store.schema import (
    TAKEN_UP,
    WAITING,
    deliveries,
    events,
    subscriptions,
    target_notices,
    targets,
    utcnow,
)

log = structlog.get_logger("jobwire.retention")

# Long enough that every running instance has polled the delete (they poll every second).
TOMBSTONE_AGE = timedelta(days=1)
# Between two batches: room for the pipeline's own write on SQLite's single writer.
PAUSE_S = 0.05


@dataclass(frozen=True, slots=True)
class Pruned:
    deliveries: int = 0
    events: int = 0
    subscriptions: int = 0
    targets: int = 0
    notices: int = 0

    def __bool__(self) -> bool:
        return any((self.deliveries, self.events, self.subscriptions, self.targets, self.notices))


class Retention:
    def __init__(self, engine: AsyncEngine, settings: RetentionSettings) -> None:
        self.engine = engine
        self.settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        """Prune every `interval_s` until `stop` is set; a failed pass is logged and retried."""
        while not stop.is_set():
            try:
                await self.prune(stop)
            except Exception as exc:
                log.error("retention.failed", error=explain(exc))
            await wait_or_stop(stop, self.settings.interval_s)

    async def prune(self, stop: asyncio.Event | None = None) -> Pruned:
        """One pass: batch after batch until nothing old is left (or `stop` is set)."""
        now = utcnow()
        started = time.monotonic()
        n = self.settings.batch_size
        old_deliveries = select(deliveries.c.id).where(
            deliveries.c.status.in_(["sent", "dead"]),
            deliveries.c.next_attempt_at < now - timedelta(days=self.settings.deliveries_days),
        )
        needed = exists().where(
            deliveries.c.event_kind == events.c.kind, deliveries.c.event_id == events.c.id
        )
        old_events = select(events.c.kind, events.c.id).where(
            events.c.received_at < now - timedelta(days=self.settings.events_days), ~needed
        )
        # By target, each half of the ledger through its own index (service/store/schema.py):
        # rows taken up by `ix_deliveries_target`, one target at a time; the targets of
        # waiting rows through `ix_deliveries_due`, once for the statement, as they may be a
        # backlog.
        waiting_for = select(deliveries.c.target_id).where(WAITING)
        referenced = or_(
            exists().where(
                TAKEN_UP,
                deliveries.c.target_id == targets.c.id,
                targets.c.subscription_id == subscriptions.c.id,
            ),
            subscriptions.c.id.in_(
                select(targets.c.subscription_id).where(targets.c.id.in_(waiting_for))
            ),
        )
        old_tombstones = select(subscriptions.c.id).where(
            subscriptions.c.deleted.is_(True),
            subscriptions.c.updated_at < now - TOMBSTONE_AGE,
            ~referenced,
        )
        # Targets taken out of their subscription, or of a subscription gone for good, that no
        # alert names any more.
        unused_targets = select(targets.c.id).where(
            or_(
                targets.c.removed.is_(True),
                ~exists().where(subscriptions.c.id == targets.c.subscription_id),
            ),
            ~exists().where(TAKEN_UP, deliveries.c.target_id == targets.c.id),
            targets.c.id.not_in(waiting_for),
        )
        batches: dict[str, Delete] = {
            "deliveries": delete(deliveries).where(deliveries.c.id.in_(old_deliveries.limit(n))),
            "events": delete(events).where(
                tuple_(events.c.kind, events.c.id).in_(old_events.limit(n))
            ),
            "subscriptions": delete(subscriptions).where(
                subscriptions.c.id.in_(old_tombstones.limit(n))
            ),
            # What meta-alerts remember of the targets about to go (and of any already gone),
            # before they go: on SQLite a new target may take a deleted one's id, and must not
            # inherit "its owner was told today".
            "notices": delete(target_notices).where(
                target_notices.c.target_id.in_(
                    select(target_notices.c.target_id)
                    .where(
                        or_(
                            target_notices.c.target_id.in_(unused_targets),
                            ~exists().where(targets.c.id == target_notices.c.target_id),
                        )
                    )
                    .limit(n)
                )
            ),
            "targets": delete(targets).where(targets.c.id.in_(unused_targets.limit(n))),
        }
        counts = {name: await self._repeat(name, batch, stop) for name, batch in batches.items()}
        pruned = Pruned(**counts)
        if pruned:
            log.info("retention.pruned", **counts, seconds=round(time.monotonic() - started, 2))
        return pruned

    async def _repeat(self, name: str, batch: Delete, stop: asyncio.Event | None) -> int:
        """Run one batch's DELETE until it finds fewer rows than a batch holds."""
        total = rounds = 0
        while stop is None or not stop.is_set():
            async with self.engine.begin() as conn:
                deleted = (await conn.execute(batch)).rowcount
            total += deleted
            rounds += 1
            if deleted < self.settings.batch_size:
                break
            if rounds % 100 == 0:  # a long first pass over a large store shows its progress
                log.info("retention.progress", table=name, deleted=total)
            await asyncio.sleep(PAUSE_S)
        return total
