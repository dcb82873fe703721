"""The central step: a batch of events → matches → ledger rows, before Kafka commits the batch.

`LiveSubscriptions` keeps the matcher in step with the store; `Pipeline` is what the consumer
hands each batch to: `prepare` matches it, and when `record` returns, every event of the batch
and every alert it causes are durable, so the consumer may commit the batch's offsets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

import structlog

from consumers.events import Event
from consumers.pacing import wait_or_stop
from service.matching import Matcher
from service.operations.metrics import Metrics
from service.schedule import Schedule
from service.store import Recording, Store, explain, utcnow
from service.store.bulk import DeliveryRow
from service.store.ledger import EventRows, add_event_rows

log = structlog.get_logger("jobwire.pipeline")

# Events prepared between two turns of the event loop. The batch being written meanwhile takes
# its next step (the database's thread finished one; its result waits in the loop) only on
# such a turn: preparing 5,000 events in one go held each write back for about 35 ms, and the
# loop then sat idle waiting for it (a third of the time while catching up). The consumer's
# decoding turns the loop the same way (consumers/kafka.py, DECODE_STRIDE).
PREPARE_STRIDE = 100
# Ledger rows built between two turns as well: at fan-out 100, PREPARE_STRIDE events make
# 10,000 rows, and each of the round trips of a PostgreSQL write (five before its `COPY`
# starts) waited up to 20 ms for them. The parts shrink to about this many rows, by the
# fan-out of the events before.
PREPARE_ROWS = 2_000


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

    def alerts(
        self,
        events: Sequence[Event],
        now: datetime,
        rows: list[DeliveryRow] | None = None,
        matched: dict[str, int] | None = None,
    ) -> tuple[list[DeliveryRow], dict[str, int]]:
        """The ledger rows a batch causes, one per matching subscription and target, and how
        many subscriptions each matched event matched (added to `rows` and `matched` when
        given, so a batch can be taken in parts).

        Rows are built straight from the matcher's answer: at fan-out 100 a batch makes
        50,000 of them, and an object per match on the way cost a third of the batch.
        """
        rows = [] if rows is None else rows
        matched = {} if matched is None else matched
        targets, schedules = self.targets, self.schedules
        for event in events:
            kind, event_id = event.kind, event.id
            count = 0
            for subscription_id in self.matcher.match(event):
                target_ids = targets.get(subscription_id)
                if target_ids is None:
                    continue
                count += 1
                schedule = schedules.get(subscription_id) if schedules else None
                due, digest = (None, False) if schedule is None else schedule.due(now)
                rows.extend([(t, kind, event_id, due, digest) for t in target_ids])
            if count:
                matched[event_id] = matched.get(event_id, 0) + count
        return rows, matched


class Prepared(NamedTuple):
    """A batch matched and ready to write: what `Pipeline.record` makes durable."""

    recording: Recording
    event_ids: list[str]
    matched: dict[str, int]


class Pipeline:
    """Match a batch and record it: the handler the consumer awaits before it commits.

    Two steps, so the consumer can overlap them across batches: `prepare` (matching, building
    rows: the interpreter's work) for the next batch runs while `record` (the database's
    work, in its own thread or server) writes this one.
    """

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
        # Events in a part (PREPARE_STRIDE at most), from the fan-out seen so far.
        self._part = PREPARE_STRIDE

    async def prepare(
        self, events: Sequence[Event], kafka_timestamps_ms: Sequence[int] = ()
    ) -> Prepared:
        """Match a batch and build its rows, in parts of PREPARE_STRIDE events or about
        PREPARE_ROWS rows, with a turn of the event loop between two."""
        now = utcnow()
        rows: list[DeliveryRow] = []
        matched: dict[str, int] = {}
        event_rows: EventRows = {}
        start = 0
        while start < len(events):
            if start:
                await asyncio.sleep(0)
            end = start + self._part
            part = events[start:end]
            before = len(rows)
            self.live.alerts(part, now, rows, matched)
            add_event_rows(event_rows, part, now, kafka_timestamps_ms[start:end])
            made = len(rows) - before
            self._part = max(1, min(PREPARE_STRIDE, len(part) * PREPARE_ROWS // max(made, 1)))
            start = end
        recording = Recording(list(event_rows.values()), rows, now)
        return Prepared(recording, [event.id for event in events], matched)

    def rows(self, prepared: Prepared) -> int:
        return len(prepared.recording.events) + len(prepared.recording.deliveries)

    async def record(self, prepared: Prepared) -> None:
        new = await self.store.ledger.write(prepared.recording)
        matches = sum(prepared.matched.values())
        self.metrics.matches_recorded(matches, new)
        # Every event's id, so one `jq` filter follows an event from received to sent.
        log.info(
            "match.recorded",
            events=len(prepared.event_ids),
            matches=matches,
            new=new,
            event_ids=prepared.event_ids,
            matched=prepared.matched,
        )
        if new:
            self._recorded()

    async def __call__(
        self, events: Sequence[Event], kafka_timestamps_ms: Sequence[int] = ()
    ) -> None:
        await self.record(await self.prepare(events, kafka_timestamps_ms))
