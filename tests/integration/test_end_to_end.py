"""The walking skeleton end to end: sample events through real Kafka to real inboxes."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select

from consumers.publish import publish_file
from devstack.kafka import KafkaBroker
from devstack.sinks import HttpSink, SmtpSink
from service.store import Store
from service.store.schema import events
from service.subscriptions import SubscriptionIn
from tests.conftest import SAMPLES, make_settings
from tests.integration.conftest import chat_target, dead_letters, eventually, mail_target, running

pytestmark = pytest.mark.integration


async def test_sample_events_alert_exactly_the_right_people_and_bad_bytes_are_dead_lettered(
    kafka: KafkaBroker, smtp_sink: SmtpSink, http_sink: HttpSink, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, kafka.bootstrap)
    store = await Store.open(settings.store.url)

    async def subscribe(**fields: object) -> str:
        return (await store.subscriptions.add(SubscriptionIn.model_validate(fields))).id

    await subscribe(
        employers=["NORDSTROM"],
        cities=["Portland"],
        notify=[mail_target(smtp_sink, "ana@example.com")],
    )
    await subscribe(
        titles=["Store Protection Specialist"],
        cities=["Dallas"],
        notify=[chat_target(http_sink, "ben")],
    )
    await subscribe(employers=["MACY'S"], notify=[mail_target(smtp_sink, "cy@example.com")])
    await subscribe(employers=["Tencent"], notify=[chat_target(http_sink, "dee")])

    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    # Bad bytes first, in the partition of the samples, so the good events come after them.
    await producer.send_and_wait(
        settings.kafka.postings_topic, b'{"id": "broken", "employer": ', partition=0
    )
    await producer.send_and_wait(
        settings.kafka.postings_topic,
        b'{"id": "no-employer", "title": "Agent", "city": "Portland"}',
        partition=0,
    )
    await producer.stop()
    published_from = int(time.time() * 1000)
    await publish_file(settings.kafka, SAMPLES)
    published_by = int(time.time() * 1000)

    async with running(settings):
        await asyncio.to_thread(smtp_sink.wait_for, 8, 60.0)
        await asyncio.to_thread(http_sink.wait_for, 2, 60.0)

        async def all_sent() -> bool:
            return await store.ledger.counts() == {"sent": 10}

        await eventually(all_sent)

    emails = Counter(message.to for message in smtp_sink.messages)
    assert emails == {"ana@example.com": 2, "cy@example.com": 6}
    ana = sorted(m.subject for m in smtp_sink.messages if m.to == "ana@example.com")
    assert ana == [
        "New job: Asset Protection - Coordinator - Portland Distribution Center"
        " at NORDSTROM, Portland",
        "New job: Asset Protection Agent - Cascade Station Rack at NORDSTROM, Portland",
    ]
    assert any("Link: https://jobs.example.com/" in m.body for m in smtp_sink.messages)

    chats = {post.path: post.json for post in http_sink.requests}
    assert sorted(chats) == ["/ben", "/dee"]
    assert chats["/ben"]["title"] == "New job: Store Protection Specialist at ROSS STORES, Dallas"
    assert (
        chats["/dee"]["title"]
        == "News: U.S. explores restrictions on Ant Group, Tencent payment platforms"
    )
    assert "By Reuters API" in chats["/dee"]["message"]

    # Each event keeps its Kafka timestamp, where its alerts' latency starts on any instance.
    async with store.engine.connect() as conn:
        stamps = (await conn.execute(select(events.c.kafka_timestamp_ms))).scalars().all()
    assert stamps
    assert all(published_from <= s <= published_by for s in stamps), stamps

    dead = await dead_letters(settings.kafka, expected=2)
    reasons = {headers["jobwire.error"] for _, headers in dead}
    assert any(r.startswith("not valid JSON") for r in reasons)
    assert "employer: Field required" in reasons
    assert {headers["jobwire.source.topic"] for _, headers in dead} == {
        settings.kafka.postings_topic
    }
    assert {value for value, _ in dead} == {
        b'{"id": "broken", "employer": ',
        b'{"id": "no-employer", "title": "Agent", "city": "Portland"}',
    }
    await store.close()


def test_the_samples_are_the_seed_page(sample_lines: list[dict[str, object]]) -> None:
    kinds = Counter(str(line["kind"]) for line in sample_lines)
    assert kinds == {"posting": 22, "article": 1}
    assert len({line["id"] for line in sample_lines}) == 23
    assert orjson.loads(SAMPLES.read_bytes().splitlines()[-1])["companies"] == [
        "Ant Group",
        "Tencent",
    ]
