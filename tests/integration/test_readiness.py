"""Readiness tells the truth when Kafka or the store goes away and comes back, and the logs say
so once each, with the Kafka client's repeated complaints collapsed.

jobwire runs as operators run it (`jobwire run`, JSON logs in a file); the broker and the
PostgreSQL server are real ones, stopped and started again mid-run.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from devstack.kafka import KafkaBroker, start_kafka
from devstack.postgres import PostgresServer, start_postgres
from devstack.sinks import HttpSink
from service.store import Store
from tests.conftest import make_settings
from tests.integration.conftest import (
    chat_target,
    listening_url,
    postings,
    publish,
    service_env,
    start_jobwire,
    stop_jobwire,
    subscribe,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# What item 4 of the operability issue asks: readiness right within 10 s either way.
WITHIN_S = 10.0
COUNT = re.compile(r" \((\d+) more in \d+ s\)$")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker this test may stop without disturbing the others."""
    broker = start_kafka(tmp_path / "kafka")
    yield broker
    broker.stop()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    server = start_postgres(tmp_path / "postgres")
    yield server
    server.stop()


async def readiness(client: httpx.AsyncClient, url: str) -> tuple[int, dict[str, str]]:
    try:
        response = await client.get(f"{url}/readyz", timeout=5.0)
    except httpx.TransportError as exc:
        return 0, {"error": str(exc)}
    return response.status_code, response.json()


async def until_readiness(
    client: httpx.AsyncClient, url: str, status: int, within_s: float
) -> tuple[float, dict[str, str]]:
    """Poll /readyz (as a load balancer does, 5 times a second) until it answers `status`;
    how long that took, and the body."""
    started = time.monotonic()
    while True:
        code, body = await readiness(client, url)
        if code == status:
            return time.monotonic() - started, body
        if time.monotonic() - started > within_s:
            raise AssertionError(f"/readyz still {code} {body} after {within_s} s")
        await asyncio.sleep(0.2)


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.startswith(b"{")]


async def test_readiness_follows_a_broker_that_stops_and_comes_back(
    own_broker: KafkaBroker, http_sink: HttpSink, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, own_broker.bootstrap)
    await subscribe(settings.store.url, employers=["ACME"], notify=[chat_target(http_sink, "r")])
    log_path = tmp_path / "jobwire.log"
    process = start_jobwire(service_env(settings), log_path)
    try:
        url = await listening_url(log_path)
        async with httpx.AsyncClient() as client:
            await until_readiness(client, url, 200, 60)
            await publish(own_broker.bootstrap, settings.kafka.postings_topic, postings("a", 5))
            await asyncio.to_thread(http_sink.wait_for, 5, 60.0)

            await asyncio.to_thread(own_broker.kill)
            noticed_s, body = await until_readiness(client, url, 503, WITHIN_S)
            assert body == {"kafka": "not connected", "store": "ok"}
            # An outage long enough for the Kafka client to retry a few hundred times.
            await asyncio.sleep(15)  # by design: the outage itself
            assert (await readiness(client, url))[0] == 503

            await asyncio.to_thread(own_broker.restart)
            back_s, body = await until_readiness(client, url, 200, WITHIN_S)
            assert body == {"kafka": "ok", "store": "ok"}
            await publish(own_broker.bootstrap, settings.kafka.postings_topic, postings("b", 5))
            await asyncio.to_thread(http_sink.wait_for, 10, 60.0)
    finally:
        stop_jobwire(process)

    lines = log_lines(log_path)
    events = [line["event"] for line in lines]
    assert events.count("consumer.kafka_lost") == 1
    assert events.count("consumer.kafka_restored") == 1
    lost = events.index("consumer.kafka_lost")
    restored = events.index("consumer.kafka_restored")
    assert lost < restored
    assert lines[restored]["down_s"] >= 15
    assert "BOOTSTRAP_SERVERS" in lines[lost]["hint"]
    # aiokafka's own lines from the outage on: one per kind and 10 s window, the later ones
    # with how many repeats they stand for; not one per retry.
    library = [line for line in lines[lost:] if line["logger"].startswith("aiokafka")]
    kinds = Counter((line["logger"], line["event"].split(" (", 1)[0]) for line in library)
    counted = [int(found[1]) for line in library if (found := COUNT.search(line["event"]))]
    with capsys.disabled():
        print(
            f"\n[readiness] kafka: 503 after {noticed_s:.1f} s, 200 {back_s:.1f} s after the "
            f"broker was back; {len(library)} aiokafka lines from the outage on, {len(kinds)} "
            f"kinds, standing for {len(library) + sum(counted)} lines"
        )
    assert kinds, "the outage should show in aiokafka's lines at least once"
    outage_s = lines[restored]["down_s"]
    assert max(kinds.values()) <= outage_s // 10 + 2, kinds
    assert counted, "repeats are counted, not shown"
    assert sum(counted) > len(library)


async def test_readiness_follows_a_store_that_stops_and_comes_back(
    kafka: KafkaBroker,
    own_postgres: PostgresServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(tmp_path, kafka.bootstrap)
    settings.store.url = own_postgres.url
    await (await Store.open(own_postgres.url, auto_migrate=True)).close()
    log_path = tmp_path / "jobwire.log"
    process = start_jobwire(service_env(settings), log_path)
    try:
        url = await listening_url(log_path)
        async with httpx.AsyncClient() as client:
            await until_readiness(client, url, 200, 60)
            await asyncio.to_thread(own_postgres.halt)
            noticed_s, body = await until_readiness(client, url, 503, WITHIN_S)
            assert body == {"kafka": "ok", "store": "unreachable"}
            await asyncio.sleep(3)  # by design: a short outage
            await asyncio.to_thread(own_postgres.restart)
            back_s, body = await until_readiness(client, url, 200, WITHIN_S)

            async def restored_logged() -> bool:
                return any(line["event"] == "store.restored" for line in log_lines(log_path))

            deadline = time.monotonic() + WITHIN_S
            while not await restored_logged():
                assert time.monotonic() < deadline, "store.restored was not logged"
                await asyncio.sleep(0.2)
    finally:
        stop_jobwire(process)

    events = [line["event"] for line in log_lines(log_path)]
    with capsys.disabled():
        print(f"\n[readiness] store: 503 after {noticed_s:.1f} s, 200 {back_s:.1f} s after")
    assert events.count("store.lost") == 1
    assert events.count("store.restored") == 1
    assert events.index("store.lost") < events.index("store.restored")
