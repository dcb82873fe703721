"""The Kafka launcher itself: a real broker that round-trips messages and survives restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack.kafka import KafkaBroker, create_topics_async, start_kafka

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    # Its own broker, not the session's: these tests restart and kill it.
    broker = start_kafka(tmp_path_factory.mktemp("kafka-launcher"))
    yield broker
    broker.stop()


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(values) < expected:
                batches = await consumer.getmany(timeout_ms=500)
                values += [m.value for batch in batches.values() for m in batch if m.value]
    finally:
        await consumer.stop()
    return values


async def test_messages_round_trip_through_the_broker(broker: KafkaBroker) -> None:
    assert broker.is_running()
    assert broker.bootstrap.startswith("127.0.0.1:")
    await create_topics_async(broker.bootstrap, ["launcher-roundtrip"])
    await create_topics_async(broker.bootstrap, ["launcher-roundtrip"])  # exists: no error
    sent = [b"one", b"two", b"three"]

    await _produce(broker.bootstrap, "launcher-roundtrip", sent)

    assert await _consume(broker.bootstrap, "launcher-roundtrip", expected=3) == sent


async def test_restart_and_crash_recovery_keep_the_data(broker: KafkaBroker) -> None:
    topic = "launcher-restart"  # auto-created on first produce
    await _produce(broker.bootstrap, topic, [b"before restart"])
    bootstrap, first_pid = broker.bootstrap, broker.pid

    await asyncio.to_thread(broker.restart)  # graceful stop, then start again

    assert (broker.bootstrap, broker.is_running()) == (bootstrap, True)
    assert broker.pid != first_pid
    assert await _consume(broker.bootstrap, topic, expected=1) == [b"before restart"]

    await _produce(broker.bootstrap, topic, [b"before crash"])
    broker.kill()
    assert not broker.is_running()
    await asyncio.to_thread(broker.restart)  # crash recovery, same ports and data

    assert await _consume(broker.bootstrap, topic, expected=2) == [
        b"before restart",
        b"before crash",
    ]
