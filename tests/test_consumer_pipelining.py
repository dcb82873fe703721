"""Two batches in hand: the next batch is prepared while one is recorded, and commits still
follow the ledger, in order, for partitions this member holds.

The Kafka clients are stand-ins here (the real broker's runs are tests/integration/), so each
step of the loop can be held and looked at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError
from structlog.testing import capture_logs

import consumers.kafka
from config.settings import KafkaSettings
from consumers.events import Event
from consumers.kafka import EventConsumer
from tests.conftest import eventually

TOPIC = "jobs.postings"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def record(
    tp: TopicPartition, offset: int, value: bytes | None = None
) -> ConsumerRecord[bytes, bytes]:
    body = value or orjson.dumps(
        {"id": f"e-{tp.partition}-{offset}", "employer": "ACME", "title": "Agent", "city": "Oslo"}
    )
    return ConsumerRecord(
        tp.topic, tp.partition, offset, 0, 0, None, body, None, len(body), len(body), []
    )


class FakeKafka:
    """Stands for AIOKafkaConsumer and AIOKafkaProducer: hands out queued batches, and
    commits as aiokafka does (refusing partitions not assigned)."""

    consumer: ClassVar[FakeKafka]
    unanswered: ClassVar[int]  # the next commits the group coordinator never answers
    batches: ClassVar[list[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]]

    def __init__(self, **options: Any) -> None:
        if options.get("group_id"):
            FakeKafka.consumer = self
        self.options = options
        self.assigned = {P0, P1}
        self.commits: list[dict[TopicPartition, int]] = []
        self.asked: list[int] = []  # max_records of each fetch that returned a batch
        self.sent: list[bytes] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def topics(self) -> set[str]:
        return {TOPIC}

    async def getmany(
        self, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        await asyncio.sleep(0)
        if FakeKafka.batches:
            self.asked.append(max_records)
            return FakeKafka.batches.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if FakeKafka.unanswered:
            FakeKafka.unanswered -= 1
            await asyncio.Event().wait()  # as aiokafka retrying a coordinator that never answers
        for tp in offsets:
            if tp not in self.assigned:
                raise IllegalStateError(f"Partition {tp} is not assigned")
        self.commits.append(dict(offsets))

    async def send(self, topic: str, value: bytes, **kwargs: Any) -> asyncio.Future[None]:
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Steps:
    """A handler that writes down what it was asked, and can hold a record open."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.release = asyncio.Event()
        self.release.set()

    async def prepare(
        self, events: Sequence[Event], kafka_timestamps_ms: Sequence[int]
    ) -> list[str]:
        ids = [event.id for event in events]
        self.log.append(f"prepare {ids}")
        return ids

    async def record(self, prepared: list[str]) -> None:
        self.log.append(f"record {prepared}")
        await self.release.wait()
        self.log.append(f"recorded {prepared}")

    def rows(self, prepared: list[str]) -> int:
        return len(prepared) * self.fanout

    fanout = 1  # the rows each event makes


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> type[FakeKafka]:
    monkeypatch.setattr(consumers.kafka, "AIOKafkaConsumer", FakeKafka)
    monkeypatch.setattr(consumers.kafka, "AIOKafkaProducer", FakeKafka)
    monkeypatch.setattr(consumers.kafka, "PROBE_INTERVAL_S", 60.0)
    FakeKafka.batches = []
    FakeKafka.unanswered = 0
    return FakeKafka


def settings(**changes: Any) -> KafkaSettings:
    return KafkaSettings(
        **{"create_topics": False, "batch_timeout_ms": 20, "commit_interval_ms": 0, **changes}
    )


async def until(condition: Callable[[], bool]) -> None:
    async def holds() -> bool:
        return condition()

    await eventually(holds, within_s=5.0, every_s=0.005)


async def test_the_next_batch_is_prepared_while_one_is_recorded_and_commits_stay_in_order(
    kafka: type[FakeKafka],
) -> None:
    kafka.batches = [{P0: [record(P0, 0)]}, {P0: [record(P0, 1)]}]
    steps = Steps()
    steps.release.clear()  # the first batch's write does not end until we say so
    stop = asyncio.Event()
    run = asyncio.create_task(EventConsumer(settings(), steps).run(stop))

    # The second batch is prepared while the first is still being written...
    await until(lambda: "prepare ['e-0-1']" in steps.log)
    assert steps.log == ["prepare ['e-0-0']", "record ['e-0-0']", "prepare ['e-0-1']"]
    # ...and nothing is committed before the first batch's write returned.
    assert kafka.consumer.commits == []

    steps.release.set()
    await until(lambda: len(kafka.consumer.commits) == 2)
    stop.set()
    await run
    assert kafka.consumer.commits == [{P0: 1}, {P0: 2}]
    assert steps.log.index("recorded ['e-0-0']") < steps.log.index("record ['e-0-1']")


async def test_a_partition_taken_away_meanwhile_is_recorded_but_not_committed(
    kafka: type[FakeKafka],
) -> None:
    kafka.batches = [
        {P0: [record(P0, 0)]},
        {P0: [record(P0, 1)], P1: [record(P1, 7), record(P1, 8, b"not json")]},
    ]
    steps = Steps()
    steps.release.clear()
    stop = asyncio.Event()
    run = asyncio.create_task(EventConsumer(settings(), steps).run(stop))
    await until(lambda: "prepare ['e-0-1', 'e-1-7']" in steps.log)

    # A rebalance gives partition 1 to another member before the second batch is recorded.
    kafka.consumer.assigned = {P0}
    steps.release.set()
    await until(lambda: len(kafka.consumer.commits) == 2)
    stop.set()
    await run  # before: aiokafka refused the commit ("not assigned") and the consumer failed

    assert "recorded ['e-0-1', 'e-1-7']" in steps.log  # harmless: the ledger dedupes
    assert kafka.consumer.commits == [{P0: 1}, {P0: 2}]
    # The malformed message is the new owner's to park, not this member's.
    assert kafka.consumer.sent == []


async def test_a_stop_records_and_commits_the_batch_in_hand(kafka: type[FakeKafka]) -> None:
    kafka.batches = [{P0: [record(P0, 0)]}]
    steps = Steps()
    steps.release.clear()
    stop = asyncio.Event()
    run = asyncio.create_task(EventConsumer(settings(), steps).run(stop))
    await until(lambda: "record ['e-0-0']" in steps.log)

    stop.set()
    await asyncio.sleep(0.05)
    assert not run.done()  # the write in hand is waited for...
    steps.release.set()
    await run
    assert kafka.consumer.commits == [{P0: 1}]  # ...and committed


async def test_a_commit_kafka_never_answers_is_given_up_and_the_next_one_covers_it(
    kafka: type[FakeKafka], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a broker restart, a real commit went unanswered for as long as the broker was up,
    and `jobwire run` could not stop: SIGTERM waited on the batch in hand for ever."""
    monkeypatch.setattr(consumers.kafka, "COMMIT_TIMEOUT_S", 0.05)
    kafka.batches = [{P0: [record(P0, 0)]}]
    steps = Steps()
    stop = asyncio.Event()
    kafka.unanswered = 1
    run = asyncio.create_task(EventConsumer(settings(), steps).run(stop))
    await until(lambda: "recorded ['e-0-0']" in steps.log)

    kafka.batches.append({P0: [record(P0, 1)]})  # the consumer goes on...
    await until(lambda: kafka.consumer.commits == [{P0: 2}])  # ...and covers both batches
    kafka.unanswered = 1
    kafka.batches.append({P0: [record(P0, 2)]})
    await until(lambda: "recorded ['e-0-2']" in steps.log)
    stop.set()
    await asyncio.wait_for(run, 5)  # a stop does not wait on the coordinator for ever
    assert kafka.consumer.commits == [{P0: 2}]


async def test_batches_grow_while_events_wait_but_hold_fewer_when_each_makes_many_rows(
    kafka: type[FakeKafka],
) -> None:
    """A batch is one write and one commit: a consumer behind catches up with big ones, unless
    each event matches so many subscriptions that one write would hold the store for long."""
    steps = Steps()
    stop = asyncio.Event()
    options = settings(batch_max_records=5000, batch_max_rows=1000)
    run = asyncio.create_task(EventConsumer(options, steps).run(stop))

    async def batch_of(offsets: range, fanout: int) -> None:
        steps.fanout = fanout
        kafka.batches.append({P0: [record(P0, offset) for offset in offsets]})
        last = f"'e-0-{offsets[-1]}']"
        await until(lambda: any(s.startswith("recorded") and last in s for s in steps.log))

    await batch_of(range(0, 4), fanout=1)  # a row an event: as many as 1,000 rows allow
    await batch_of(range(4, 8), fanout=100)  # 100 rows an event: ten events
    await batch_of(range(8, 12), fanout=0)  # only the events' own rows
    await batch_of(range(12, 16), fanout=10_000)  # more rows than the bound: still one event
    kafka.batches.append({P0: [record(P0, 16)]})
    await until(lambda: len(kafka.consumer.asked) == 5)
    stop.set()
    await run
    assert kafka.consumer.asked == [500, 1000, 10, 1000, 1]  # the first before any is known


async def test_recorded_batches_share_a_commit_made_when_the_interval_is_up_or_at_a_stop(
    kafka: type[FakeKafka],
) -> None:
    """At 1,000 small batches a second, a commit each (a round trip, and a write in Kafka)
    took a share of the two cores that events and alerts needed."""
    kafka.batches = [{P0: [record(P0, 0)]}, {P0: [record(P0, 1)], P1: [record(P1, 4)]}]
    steps = Steps()
    stop = asyncio.Event()
    with capture_logs() as logs:
        consumer = EventConsumer(settings(commit_interval_ms=60_000), steps)
        run = asyncio.create_task(consumer.run(stop))
        await until(lambda: "recorded ['e-0-1', 'e-1-4']" in steps.log)
        await asyncio.sleep(0.1)
        assert kafka.consumer.commits == []  # recorded, waiting for the interval
        stop.set()
        await run
    assert kafka.consumer.commits == [{P0: 2, P1: 5}]  # one commit for both, at the stop
    # Still a line per batch, each naming its own events (a line for a second's batches
    # would name tens of thousands).
    committed = [line for line in logs if line["event"] == "consumer.committed"]
    assert [(line["offsets"], line["event_ids"]) for line in committed] == [
        ({"jobs.postings[0]": 1}, ["e-0-0"]),
        ({"jobs.postings[0]": 2, "jobs.postings[1]": 5}, ["e-0-1", "e-1-4"]),
    ]


async def test_recorded_batches_are_committed_once_the_interval_is_up_though_nothing_follows(
    kafka: type[FakeKafka],
) -> None:
    kafka.batches = [{P0: [record(P0, 0)]}]
    steps = Steps()
    stop = asyncio.Event()
    run = asyncio.create_task(EventConsumer(settings(commit_interval_ms=50), steps).run(stop))
    await until(lambda: kafka.consumer.commits == [{P0: 1}])
    stop.set()
    await run
    assert kafka.consumer.commits == [{P0: 1}]


async def test_a_rebalance_commits_what_was_recorded_before_the_partitions_go(
    kafka: type[FakeKafka],
) -> None:
    kafka.batches = [{P0: [record(P0, 0)], P1: [record(P1, 0)]}]
    steps = Steps()
    stop = asyncio.Event()
    run = asyncio.create_task(EventConsumer(settings(commit_interval_ms=60_000), steps).run(stop))
    await until(lambda: "recorded ['e-0-0', 'e-1-0']" in steps.log)

    await kafka.consumer.listener.on_partitions_revoked({P1})
    assert kafka.consumer.commits == [{P0: 1, P1: 1}]
    kafka.consumer.assigned = {P0}  # the new owner of partition 1 starts after offset 0
    stop.set()
    await run
    assert kafka.consumer.commits == [{P0: 1, P1: 1}]  # nothing left to commit at the stop


async def test_the_consumer_asks_the_broker_to_gather_events_for_a_fetch_as_configured(
    kafka: type[FakeKafka],
) -> None:
    # An operator under sustained load trades a few ms for fuller fetches: the settings'
    # values must reach the consumer.
    kafka.consumer = None  # type: ignore[assignment]  # an earlier test's is not this one
    stop = asyncio.Event()
    tuned = settings(fetch_min_bytes=65_536, fetch_max_wait_ms=25)
    run = asyncio.create_task(EventConsumer(tuned, Steps()).run(stop))
    await until(lambda: kafka.consumer is not None)
    stop.set()
    await asyncio.wait_for(run, 5)
    assert kafka.consumer.options["fetch_min_bytes"] == 65_536
    assert kafka.consumer.options["fetch_max_wait_ms"] == 25
    # By default a fetch is answered as soon as one event is there, as aiokafka would.
    assert (KafkaSettings().fetch_min_bytes, KafkaSettings().fetch_max_wait_ms) == (1, 500)
