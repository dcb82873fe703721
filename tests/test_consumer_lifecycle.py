"""The consumer's clients are stopped whatever ends its run, so a supervised restart after a
failure at start-up leaves no client behind (each holds connections and background tasks)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from structlog.testing import capture_logs

import consumers.kafka
from config.settings import KafkaSettings
from consumers.kafka import EventConsumer


class Client:
    """Stands for AIOKafkaConsumer / AIOKafkaProducer: notes whether it is running."""

    made: ClassVar[list[Client]] = []

    def __init__(self, **options: Any) -> None:
        self.running = False
        Client.made.append(self)

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    def subscribe(self, topics: list[str], listener: object) -> None:
        pass


class Handler:
    async def prepare(self, events: object, kafka_timestamps_ms: object) -> None:
        pass

    async def record(self, prepared: None) -> None:
        pass

    def rows(self, prepared: None) -> int:
        return 0


def consumer_whose_topics_fail(
    monkeypatch: pytest.MonkeyPatch, kafka_consumer: type[Client] = Client
) -> EventConsumer:
    """A consumer on stand-in clients whose broker goes away while it creates its topics,
    after both clients have started: its run ends, and must stop them."""
    Client.made = []
    monkeypatch.setattr(consumers.kafka, "AIOKafkaConsumer", kafka_consumer)
    monkeypatch.setattr(consumers.kafka, "AIOKafkaProducer", Client)

    async def broker_went_away(self: EventConsumer) -> None:
        raise ConnectionError("the broker went away")

    monkeypatch.setattr(EventConsumer, "_create_missing_topics", broker_went_away)
    return EventConsumer(KafkaSettings(create_topics=True), Handler())


async def test_a_failure_while_creating_the_topics_stops_both_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = consumer_whose_topics_fail(monkeypatch)
    with pytest.raises(ConnectionError):
        await consumer.run(asyncio.Event())
    assert len(Client.made) == 2
    assert not any(client.running for client in Client.made)


async def test_a_consumer_that_cannot_close_does_not_keep_the_service_from_stopping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiokafka's consumer closes only once its group coordination has finished, which after a
    broker outage may go on looking for the coordinator: the stop gives up on it after a
    while, still stops the producer, and says so."""

    class Stuck(Client):
        async def stop(self) -> None:
            await asyncio.Event().wait()  # the coordinator never answers

    consumer = consumer_whose_topics_fail(monkeypatch, kafka_consumer=Stuck)
    monkeypatch.setattr(consumers.kafka, "CLOSE_TIMEOUT_S", 0.2, raising=False)
    with capture_logs() as logs, pytest.raises(ConnectionError):
        await asyncio.wait_for(consumer.run(asyncio.Event()), 5)
    _, producer = Client.made
    assert not producer.running
    assert [(e["event"], e["client"]) for e in logs if "close" in e["event"]] == [
        ("consumer.close_timed_out", "consumer")
    ]
