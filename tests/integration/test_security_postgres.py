"""Abuse on PostgreSQL: events the store could not keep, and a race for the subscription limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from config.settings import TargetSettings
from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer
from devstack.sinks import HttpSink
from service.store import Store
from service.store.subscriptions import OwnerLimitReached
from service.subscriptions import SubscriptionIn
from tests.conftest import empty_database, make_settings
from tests.integration.conftest import chat_target, dead_letters, running

pytestmark = pytest.mark.integration


def posting(event_id: str, **fields: object) -> bytes:
    return orjson.dumps(
        {"id": event_id, "employer": "ACME", "title": f"Cashier {event_id[:20]}", "city": "Ely"}
        | fields
    )


async def test_events_postgres_could_not_store_are_dead_lettered_and_the_next_is_delivered(
    kafka: KafkaBroker, postgres: PostgresServer, http_sink: HttpSink, tmp_path: Path
) -> None:
    await empty_database(postgres.url)
    settings = make_settings(tmp_path, kafka.bootstrap)
    settings.store.url = postgres.url
    settings.targets = TargetSettings(allow_private_hosts=True)  # the sink is on loopback
    store = await Store.open(postgres.url, auto_migrate=True)
    await store.subscriptions.add(
        SubscriptionIn.model_validate(
            {"employers": ["ACME"], "notify": [chat_target(http_sink, "limits")]}
        )
    )
    poison = {
        "id of 201 characters": posting("x" * 201),
        "NUL in the employer": posting("nul-1", employer="AC\x00ME"),
        "NUL in the id": posting("nul\x002"),
        "a title of 10,000 characters": posting("long-1", title="T" * 10_000),
        "a year-0001 date": posting("date-1", published_at="0001-01-01T00:00:00"),
    }
    at_the_limits = posting("y" * 200, employer="ACME " + "E" * 495, contract="c" * 500)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    for value in [*poison.values(), at_the_limits, posting("valid-after")]:
        await producer.send_and_wait(settings.kafka.postings_topic, value)
    await producer.stop()

    async with running(settings) as service:
        received = await asyncio.to_thread(http_sink.wait_for, 2, 60.0)
        dead = [h["jobwire.error"] for _, h in await dead_letters(settings.kafka, 5)]
        assert not service.restarts  # the consumer never fell over on an event
    titles = sorted(r.json["title"] for r in received)
    assert titles[0].startswith("New job: Cashier valid-after at ACME")
    assert titles[1].startswith("New job: Cashier " + "y" * 20)
    # Partitions interleave, so the order of the dead letters is not the order sent.
    named = sorted(reason.split(": ", 1)[0] for reason in dead)
    assert named == sorted(["id", "employer", "id", "title", "published_at"]), dead
    assert await store.ledger.counts() == {"sent": 2}
    await store.close()


async def test_concurrent_adds_on_postgresql_stop_at_the_limit(postgres: PostgresServer) -> None:
    await empty_database(postgres.url)
    store = await Store.open(postgres.url, auto_migrate=True)
    spec = SubscriptionIn.model_validate({"employers": ["ACME"], "notify": ["json://x.example"]})
    for _ in range(95):
        await store.subscriptions.add(spec, owner="ana", max_owned=100)

    async def add() -> bool:
        try:
            await store.subscriptions.add(spec, owner="ana", max_owned=100)
        except OwnerLimitReached:
            return False
        return True

    added = await asyncio.gather(*(add() for _ in range(30)))
    assert sum(added) == 5
    assert await store.subscriptions.count("ana") == 100
    # Another owner is not held up by ana's lock or count.
    await store.subscriptions.add(spec, owner="bob", max_owned=1)
    await store.close()
