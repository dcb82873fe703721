"""The central step: a batch of events → matches → ledger rows, before Kafka commits the batch.

`LiveSubscriptions` keeps the matcher in step with the store; `Pipeline` is what the consumer
hands each batch to. When `Pipeline.__call__` returns, every event of the batch and every alert
it causes are durable, so the consumer may commit the batch's offsets.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from consumers.events import Event
from consumers.pacing import wait_or_stop
from service.matching import Matcher
from service.operations.metrics import Metrics
from service.schedule import Schedule
from service.store import Match, Store, explain, utcnow

log = structlog.get_logger("jobwire.pipeline")


class LiveSubscriptions:
    """The matcher and each subscription's targets, kept in step with the store.

    The CLI and the API write subscriptions to the store; a running service polls for what
    changed, so a change takes effect within one refresh interval, without a restart.
    """

    def __init__(self, store: Store, metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics or Metrics()
        self.matcher = Matcher()
        # Each subscription's target ids: what its ledger rows will name.
        self.targets: dict[str, tuple[int, ...]] = {}
        # Subscriptions whose alerts wait for a digest or the end of quiet hours.
        self.schedules: dict[str, Schedule] = {}
        self._seen: datetime | None = None

    async def refresh(self) -> int:
        """Apply what changed since the last refresh; returns how many subscriptions did."""
        before = self._seen
        changes, self._seen = await self.store.subscriptions.changes(before)
        started = time.perf_counter()
        for change in changes:
            self.schedules.pop(change.id, None)
            if not change.wanted:
                self.matcher.remove(change.id)
                self.targets.pop(change.id, None)
            elif change.schedule is not None:
                self.schedules[change.id] = change.schedule
        wanted_now = [change for change in changes if change.wanted]
        self.matcher.add_many((change.id, change.criteria) for change in wanted_now)
        self.targets.update((change.id, change.target_ids) for change in wanted_now)
        index_s = time.perf_counter() - started if changes else None
        self.metrics.subscriptions_refreshed(len(self.targets), index_s)
        # The store returns a small overlap again each time; count only what is new.
        return sum(1 for change in changes if before is None or change.updated_at > before)

    async def keep_fresh(self, stop: asyncio.Event, interval_s: float) -> None:
        while not stop.is_set():
            await wait_or_stop(stop, interval_s)
            try:
                changed = await self.refresh()
            except Exception as exc:  # store unreachable: keep matching with what we have
                log.error("subscriptions.refresh_failed", error=explain(exc))
                continue
            if changed:
                log.info(
                    "subscriptions.refreshed",
                    changed=changed,
                    active=len(self.targets),
                    # Changes made up to this moment (the newest `updated_at` read) now apply.
                    as_of=self._seen.isoformat() + "Z" if self._seen else None,
                )

    def matches(self, events: Sequence[Event], now: datetime) -> list[Match]:
        found = [
            Match(subscription_id, event, self.targets[subscription_id])
            for event in events
            for subscription_id in self.matcher.match(event)
            if subscription_id in self.targets
        ]
        if not self.schedules:
            return found
        return [self._scheduled(match, now) for match in found]

    def _scheduled(self, match: Match, now: datetime) -> Match:
        schedule = self.schedules.get(match.subscription_id)
        if schedule is None:
            return match
        due, digest = schedule.due(now)
        return Match(match.subscription_id, match.event, match.target_ids, due, digest)


class Pipeline:
    """Match a batch and record it: the handler the consumer awaits before it commits."""

    def __init__(
        self,
        live: LiveSubscriptions,
        store: Store,
        recorded: Callable[[], None],
        metrics: Metrics | None = None,
    ) -> None:
        self.live = live
        self.metrics = metrics or Metrics()
        self.store = store
        self._recorded = recorded

    async def __call__(self, events: Sequence[Event]) -> None:
        matches = self.live.matches(events, utcnow())
        new = await self.store.ledger.record(events, matches)
        self.metrics.matches_recorded(len(matches), new)
        # Every event's id, so one `jq` filter follows an event from received to sent.
        log.info(
            "match.recorded",
            events=len(events),
            matches=len(matches),
            new=new,
            event_ids=[event.id for event in events],
            matched=dict(Counter(match.event.id for match in matches)),
        )
        if new:
            self._recorded()
