"""Scaling out: more instances in the consumer group, one PostgreSQL store, each alert once."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer
from devstack.sinks import HttpSink
from service.store import Store
from service.subscriptions import SubscriptionIn
from tests.conftest import empty_database, make_settings
from tests.integration.conftest import chat_target, eventually, running

pytestmark = pytest.mark.integration


async def test_instances_joining_the_group_share_the_work_and_send_each_alert_once(
    kafka: KafkaBroker, postgres: PostgresServer, http_sink: HttpSink, tmp_path: Path
) -> None:
    await empty_database(postgres.url)
    settings = make_settings(tmp_path, kafka.bootstrap)
    settings.store.url = postgres.url
    # What an operator does once (`jobwire db upgrade`); the instances then only check it.
    store = await Store.open(postgres.url, auto_migrate=True)
    await store.subscriptions.add(
        SubscriptionIn.model_validate(
            {"employers": ["ACME"], "notify": [chat_target(http_sink, "scale")]}
        )
    )

    async def publish(prefix: str, count: int) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
        await producer.start()
        for n in range(count):
            event = {
                "id": f"{prefix}-{n}",
                "employer": "ACME",
                "title": f"{prefix} {n}",
                "city": "X",
            }
            await producer.send(settings.kafka.postings_topic, orjson.dumps(event))
        await producer.flush()
        await producer.stop()

    async with AsyncExitStack() as instances:
        first = await instances.enter_async_context(running(settings))
        await publish("early", 150)
        # A second and a third instance join while the first is busy: the group rebalances.
        second = await instances.enter_async_context(running(settings))
        await publish("middle", 150)
        third = await instances.enter_async_context(running(settings))
        await publish("late", 150)
        await asyncio.to_thread(http_sink.wait_for, 450, 120.0)

        async def ledger_done() -> bool:
            return await store.ledger.counts() == {"sent": 450}

        await eventually(ledger_done)
        restarts = first.restarts + second.restarts + third.restarts

    received = Counter(r.json["title"] for r in http_sink.requests)
    assert len(received) == 450
    assert max(received.values()) == 1
    assert not restarts
    await store.close()
