"""The Kafka edge: read both topics in batches, decode, dead-letter, hand over, commit.

A batch's offsets are committed only after the handler's `record` returns, i.e. after its
matches are durable in the ledger. A crash before the commit makes Kafka deliver the batch
again, which the ledger turns into a no-op. Bytes that are not an event go to the dead-letter
topic, with the reason and where they came from, before their offsets are committed, so nothing
is lost.

Two batches are in hand at a time: while one is recorded (the database's work, in its thread
or server), the next is fetched, decoded and prepared (the interpreter's work), so the two use
two cores. Batches are still recorded one at a time, in order, and the recorded ones share a
commit at most every `commit_interval_ms` (and at a stop or a rebalance).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, Protocol, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)

from config.settings import KafkaSettings
from consumers.connection import client_options, explain_failure
from consumers.events import Event, EventKind, MalformedCause, MalformedEvent, decode
from consumers.health import (
    PROBE_INTERVAL_S,
    ConsumerObserver,
    KafkaLiveness,
    NoObserver,
    partition_lag,
)
from consumers.pacing import Backoff, wait_or_stop

log = structlog.get_logger("jobwire.consumer")

P = TypeVar("P")

# Records decoded between two turns of the event loop. The batch being recorded meanwhile
# moves to its next step (the database's thread finished one, its result waits in the loop)
# only on such a turn: without them it stalls until the whole next batch is decoded.
DECODE_STRIDE = 50

# How long a commit may wait for Kafka's group coordinator. aiokafka retries a commit for as
# long as the coordinator answers with a retriable error, without end: after a broker restart
# one went unanswered for 30 s with the broker up, and the service could not stop. Giving up
# loses nothing: the partition's next commit covers these offsets too, and until then a restart
# reads the batch again, which the ledger makes harmless.
COMMIT_TIMEOUT_S = 10.0
# Events fetched at first, before a batch has shown how many rows each one makes.
FIRST_BATCH = 500
# How long a stop waits for each Kafka client to close. aiokafka's consumer waits for its group
# coordination to finish first, and after a broker outage that may still be looking for the
# group's coordinator: a SIGTERM just after the broker came back left `jobwire run` running for
# good (the readiness test, once). Giving up loses nothing either: offsets are committed per
# batch, and the group hands this member's partitions on when its session times out.
CLOSE_TIMEOUT_S = 5.0


async def close_clients(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
    """Stop both clients, each within CLOSE_TIMEOUT_S (said when one does not close)."""
    for name, client in (("consumer", consumer), ("producer", producer)):
        try:
            await asyncio.wait_for(client.stop(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "consumer.close_timed_out",
                client=name,
                waited_s=CLOSE_TIMEOUT_S,
                hint="Kafka did not let the client close (after an outage its group may still "
                "be looking for a coordinator); stopping without it: the group hands the "
                "partitions on when this member's session times out",
            )


def next_batch_size(settings: KafkaSettings, events: int, rows: int) -> int:
    """Events to fetch at most for the next batch, after one of `events` made `rows` rows.

    A batch costs one write and one commit whatever its size, so a consumer that is behind
    catches up with big ones: 5,000 postings a batch ingested twice as many a second as 500 on
    SQLite (the store's index pages, and the commit, are shared by more events). But at 100
    matches an event, 5,000 events would be half a million rows in one transaction, which the
    delivery worker's claims would wait for: such batches hold as many events as make about
    `batch_max_rows` rows, as at 500 before. When events are not waiting, a batch is whatever
    has arrived, as small as one event.
    """
    per_event = max(rows / events, 1.0) if events else 1.0
    return max(1, min(settings.batch_max_records, int(settings.batch_max_rows / per_event)))


class BatchHandler(Protocol[P]):
    """What the consumer hands each batch to, in two steps (service/pipeline.py)."""

    async def prepare(self, events: Sequence[Event], kafka_timestamps_ms: Sequence[int]) -> P:
        """Match the batch and build what `record` writes; it waits on nothing, but lets the
        event loop turn now and then, so the batch being recorded moves on meanwhile.
        `kafka_timestamps_ms`: each event's record timestamp, in order (0 or less: none)."""
        ...

    async def record(self, prepared: P) -> None:
        """Make the prepared batch durable; its offsets are committed once this returns."""
        ...

    def rows(self, prepared: P) -> int:
        """How many rows `record` writes for the batch (it sizes the batches that follow)."""
        ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: ConsumerRecord[bytes, bytes]
    reason: str
    cause: MalformedCause


@dataclass(frozen=True, slots=True)
class Decoded(Generic[P]):
    """A fetched batch, decoded and prepared, waiting to be recorded and committed."""

    prepared: P | None  # None: none of its messages was an event
    dead: list[DeadLetter]
    offsets: dict[TopicPartition, int]
    event_ids: list[str]


@dataclass(frozen=True, slots=True)
class Recorded:
    """A batch in the ledger: its next offsets, its events and its dead-lettered messages."""

    offsets: dict[TopicPartition, int]
    event_ids: list[str]
    dead_lettered: int


@dataclass
class Uncommitted:
    """Batches recorded in the ledger whose offsets are not committed yet, in order."""

    batches: list[Recorded] = field(default_factory=list)

    def take(self, assigned: set[TopicPartition]) -> list[Recorded]:
        """All of them, emptied here, each with only the partitions this member still holds
        (only those can be committed); batches left with none are dropped."""
        taken = [
            Recorded(mine, batch.event_ids, batch.dead_lettered)
            for batch in self.batches
            if (mine := {tp: n for tp, n in batch.offsets.items() if tp in assigned})
        ]
        self.batches = []
        return taken


class EventConsumer(Generic[P]):
    """Consumes the postings and articles topics as one member of the consumer group."""

    def __init__(
        self,
        settings: KafkaSettings,
        handle: BatchHandler[P],
        observer: ConsumerObserver | None = None,
    ) -> None:
        self.settings = settings
        self.handle = handle
        self.observer = observer or NoObserver()
        self.liveness = KafkaLiveness(settings.bootstrap_servers, self.observer)
        self.kinds: dict[str, EventKind] = {
            settings.postings_topic: "posting",
            settings.articles_topic: "article",
        }
        # Held while a batch is handled and committed; a rebalance waits for it, so partitions
        # never move with a batch half done.
        self._batch_lock = asyncio.Lock()
        self._batch_size = min(FIRST_BATCH, settings.batch_max_records)
        self._uncommitted = Uncommitted()
        self._committed_at = time.monotonic()

    @property
    def connected(self) -> bool:
        """Joined, and the brokers answered within the last few seconds (readiness)."""
        return self.liveness.connected

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then commit what was handled and leave the group."""
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            group_id=self.settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.settings.auto_offset_reset,
            client_id="jobwire",
            # By default (aiokafka's own: 1 byte, 500 ms) a fetch is answered as soon as one
            # event is there; operators under sustained load may trade a few ms for fuller
            # fetches (config/settings.py).
            fetch_min_bytes=self.settings.fetch_min_bytes,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
        )
        producer = AIOKafkaProducer(
            **client_options(self.settings),
            acks="all",
            enable_idempotence=True,
            client_id="jobwire-dead-letter",
        )
        await self._start(consumer, producer, stop)
        if stop.is_set():  # stopped while it waited for Kafka: it never ran
            await close_clients(consumer, producer)
            return
        done = asyncio.Event()
        watch: asyncio.Task[None] | None = None
        in_flight: asyncio.Task[None] | None = None  # the batch being recorded and committed
        # From here both clients are running: whatever fails (creating the topics included,
        # on a broker that went away again) stops them, or each supervised restart would leave
        # two more behind.
        try:
            if self.settings.create_topics:
                await self._create_missing_topics()
            listener = _Rebalance(self._batch_lock, partial(self._commit, consumer))
            consumer.subscribe(list(self.kinds), listener=listener)
            self.liveness.started()
            log.info("consumer.started", topics=list(self.kinds), group_id=self.settings.group_id)
            watch = asyncio.create_task(self._watch(consumer, done), name="consumer.watch")
            while not stop.is_set():
                # While a batch is being recorded, take only what the fetcher already has, so
                # its commit never waits out a fetch timeout.
                batch = await consumer.getmany(
                    timeout_ms=0 if in_flight else self.settings.batch_timeout_ms,
                    max_records=self._batch_size,
                )
                ready = await self._decode(batch) if batch else None
                if in_flight is not None:
                    await in_flight
                    in_flight = None
                if ready is not None:
                    in_flight = asyncio.create_task(
                        self._record(consumer, producer, ready), name="consumer.record"
                    )
                elif self._commit_due():  # nothing new came: commit what waits
                    async with self._batch_lock:
                        await self._commit(consumer)
                # The lag is reported by _watch every PROBE_INTERVAL_S, not after every fetch.
            if in_flight is not None:  # stopping: record and commit what is in hand
                await in_flight
            async with self._batch_lock:
                await self._commit(consumer)
        finally:
            if in_flight is not None and not in_flight.done():
                in_flight.cancel()
                await asyncio.gather(in_flight, return_exceptions=True)
            done.set()
            if watch is not None:
                await asyncio.gather(watch, return_exceptions=True)
            self.liveness.stopped()
            self.observer.consumer_lag({})
            await close_clients(consumer, producer)
            log.info("consumer.stopped", topics=list(self.kinds), group_id=self.settings.group_id)

    async def _start(
        self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, stop: asyncio.Event
    ) -> None:
        """Connect, waiting for Kafka to come up rather than failing the whole service.

        Wrong credentials or certificates are waited out the same way (an operator fixes them
        without restarting jobwire's other parts), with one line per attempt that says which:
        consumer.kafka_unreachable, _auth_failed, _tls_failed or _security_mismatch.
        """
        pause = Backoff()
        while not stop.is_set():
            try:
                await producer.start()
                await consumer.start()
                return
            except KafkaConnectionError as exc:
                problem = await explain_failure(self.settings, exc)
                log.warning(
                    f"consumer.kafka_{problem.kind}",
                    bootstrap_servers=self.settings.bootstrap_servers,
                    error=problem.error,
                    retry_in_s=pause.delay_s,
                    hint=problem.hint,
                )
                await close_clients(consumer, producer)
                if not await wait_or_stop(stop, pause.delay_s):
                    pause.grow()

    async def _watch(self, consumer: AIOKafkaConsumer, done: asyncio.Event) -> None:
        """Beside the loop, which may wait on the store for a while: do the brokers answer,
        and how far behind is each partition."""
        while not await wait_or_stop(done, PROBE_INTERVAL_S):
            await self.liveness.probe(consumer.topics)
            self.observer.consumer_lag(await partition_lag(consumer))

    async def _create_missing_topics(self) -> None:
        """Create the topics if absent: a consumer subscribed to a topic that does not exist
        yet would only notice it at its next metadata refresh, minutes later."""
        wanted = [*self.kinds, self.settings.dead_letter_topic]
        admin = AIOKafkaAdminClient(**client_options(self.settings), client_id="jobwire-admin")
        try:
            await admin.start()
            missing = sorted(set(wanted) - set(await admin.list_topics()))
            if not missing:
                return
            response = await admin.create_topics(
                [
                    NewTopic(
                        name,
                        num_partitions=self.settings.topic_partitions,
                        replication_factor=self.settings.topic_replication_factor,
                    )
                    for name in missing
                ]
            )
        finally:
            await admin.close()
        # Per-topic outcomes: "already exists" means another instance was first, which is fine.
        failed = {
            name: for_code(code).__name__
            for name, code, *_ in response.topic_errors
            if code not in (0, TopicAlreadyExistsError.errno)
        }
        if failed:
            log.warning(
                "consumer.topics_not_created",
                topics=failed,
                hint="create them, or check the broker's permissions and replication settings",
            )
        log.info("consumer.topics_created", topics=sorted(set(missing) - set(failed)))

    async def _decode(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> Decoded[P]:
        events: list[Event] = []
        stamps: list[int] = []
        dead: list[DeadLetter] = []
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batch.items():
            kind = self.kinds[tp.topic]
            decoded = len(events)
            for n, record in enumerate(records, 1):
                if n % DECODE_STRIDE == 0:
                    await asyncio.sleep(0)
                try:
                    event = decode(kind, record.value)
                except MalformedEvent as exc:
                    dead.append(DeadLetter(record, exc.reason, exc.cause))
                else:
                    events.append(event)
                    stamps.append(record.timestamp)
            self.observer.events_received(tp.topic, len(events) - decoded)
            offsets[tp] = records[-1].offset + 1
        event_ids = [event.id for event in events]
        # One line a batch, naming its events: a line per event cost two fifths of ingest at
        # thousands of events a second (README: how to follow one event with jq).
        log.info(
            "events.received",
            partitions={f"{tp.topic}[{tp.partition}]": len(r) for tp, r in batch.items()},
            event_ids=event_ids,
        )
        prepared = await self.handle.prepare(events, stamps) if events else None
        if prepared is not None:
            self._batch_size = next_batch_size(
                self.settings, len(events), self.handle.rows(prepared)
            )
        return Decoded(prepared, dead, offsets, event_ids)

    async def _record(
        self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, batch: Decoded[P]
    ) -> None:
        """Dead-letter, record, commit: under the batch lock, so a rebalance waits for it."""
        async with self._batch_lock:
            # A rebalance may have taken partitions since the batch was fetched: their events
            # are recorded all the same (their new owner reads them again, and the ledger makes
            # that a no-op), but only this member's offsets can be committed, and only this
            # member's malformed messages are dead-lettered (the new owner parks the others).
            assigned = consumer.assignment()
            offsets = {tp: offset for tp, offset in batch.offsets.items() if tp in assigned}
            dead = [
                item
                for item in batch.dead
                if TopicPartition(item.record.topic, item.record.partition) in assigned
            ]
            await self._dead_letter(producer, dead)
            if batch.prepared is not None:
                await self.handle.record(batch.prepared)
            if offsets:
                self._uncommitted.batches.append(Recorded(offsets, batch.event_ids, len(dead)))
            if self._commit_due():
                await self._commit(consumer)

    def _commit_due(self) -> bool:
        interval_s = self.settings.commit_interval_ms / 1000
        return bool(self._uncommitted.batches) and (
            time.monotonic() - self._committed_at >= interval_s
        )

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit the offsets of every batch recorded since the last commit (under the batch
        lock). A commit is a round trip to the group's coordinator and a write to Kafka: one
        per batch at 1,000 small batches a second cost the loop 7% of its time and Kafka a
        share of the cores, so recorded batches wait up to `commit_interval_ms` to share one.
        A restart reads those again, and the ledger makes that harmless."""
        self._committed_at = time.monotonic()
        recorded = self._uncommitted.take(consumer.assignment())
        if not recorded:
            return
        offsets: dict[TopicPartition, int] = {}
        for batch in recorded:  # in order: a partition's last batch wins
            offsets.update(batch.offsets)
        try:
            await asyncio.wait_for(consumer.commit(offsets), COMMIT_TIMEOUT_S)
        except CommitFailedError as exc:
            # The group moved on (this member was too slow or left); whoever owns the
            # partitions now re-reads the batches, and the ledger makes that harmless.
            log.warning("consumer.commit_failed", error=str(exc))
            return
        except TimeoutError:
            log.warning(
                "consumer.commit_failed",
                error=f"Kafka's group coordinator did not answer within {COMMIT_TIMEOUT_S:g} s",
                hint="the next commit covers these offsets; check the broker's log",
            )
            return
        # A line per batch, as each batch's own lines are: a line for a second's worth of
        # batches would name tens of thousands of events.
        for batch in recorded:
            log.info(
                "consumer.committed",
                offsets={f"{tp.topic}[{tp.partition}]": n for tp, n in batch.offsets.items()},
                events=len(batch.event_ids),
                dead_lettered=batch.dead_lettered,
                event_ids=batch.event_ids,
            )

    async def _dead_letter(self, producer: AIOKafkaProducer, dead: list[DeadLetter]) -> None:
        """Park malformed messages, unchanged, with why and where they came from."""
        sends = []
        for item in dead:
            record = item.record
            headers = [
                ("jobwire.error", item.reason.encode()),
                ("jobwire.source.topic", record.topic.encode()),
                ("jobwire.source.partition", str(record.partition).encode()),
                ("jobwire.source.offset", str(record.offset).encode()),
            ]
            sends.append(
                await producer.send(
                    self.settings.dead_letter_topic,
                    value=record.value or b"",
                    key=record.key,
                    headers=headers,
                )
            )
            log.warning(
                "event.dead_lettered",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                reason=item.reason,
                dead_letter_topic=self.settings.dead_letter_topic,
            )
        # Their offsets are committed with the batch, so they must be in Kafka first.
        try:
            await asyncio.gather(*sends)
        except KafkaError:
            log.error("event.dead_letter_failed", count=len(dead))
            raise
        for item in dead:
            self.observer.event_dead_lettered(item.record.topic, item.cause)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, batch_lock: asyncio.Lock, commit: Callable[[], Awaitable[None]]) -> None:
        self.batch_lock = batch_lock
        self.commit = commit

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Waiting for the lock lets the batch in hand finish; then every recorded batch is
        # committed before the partitions go to another member, which starts from there.
        async with self.batch_lock:
            await self.commit()
            log.info("consumer.rebalanced", revoked=_names(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("consumer.rebalanced", assigned=_names(assigned))


def _names(partitions: set[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)
