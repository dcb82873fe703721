"""Real servers for the integration tests: one Kafka broker per session, sinks per test."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from config.settings import Settings
from devstack.kafka import KafkaBroker, start_kafka
from devstack.sinks import HttpSink, SmtpSink
from service.app import Service
from service.delivery import Notifier

pytestmark = pytest.mark.integration

# The installed command, for tests that run jobwire as operators do: a process of its own.
JOBWIRE = Path(sys.executable).with_name("jobwire")


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = start_kafka(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


# The one user of `secure_kafka`, accepted with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
SASL_USER = "jobwire"
SASL_PASSWORD = "kafka-pw-8d41f07c"


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A second broker, for the SASL/TLS tests only: SASL_PLAINTEXT, SSL (client certificate
    required) and SASL_SSL listeners, with a CA of its own (`secure_kafka.tls`)."""
    broker = start_kafka(
        tmp_path_factory.mktemp("kafka-secure"), sasl_users={SASL_USER: SASL_PASSWORD}, tls=True
    )
    yield broker
    broker.stop()


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    sink = SmtpSink(maildir=tmp_path / "mail")
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    sink = HttpSink()
    sink.start()
    yield sink
    sink.stop()


def mail_target(sink: SmtpSink, to: str) -> str:
    return f"mailto://127.0.0.1:{sink.port}?from=jobwire@example.com&to={to}"


def chat_target(sink: HttpSink, path: str) -> str:
    return f"{sink.url.replace('http://', 'json://')}/{path}"


@asynccontextmanager
async def running(settings: Settings, notifier: Notifier | None = None) -> AsyncIterator[Service]:
    """jobwire running in this event loop until the block ends, then stopped gracefully."""
    stop = asyncio.Event()
    service = Service(settings, notifier)
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait(
        [task, asyncio.create_task(service.ready.wait())], return_when="FIRST_COMPLETED"
    )
    if task.done():
        task.result()
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 60.0) -> None:
    """Wait until `check` holds, for state that offers nothing to await (ledger rows)."""
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {within_s} s")
        await asyncio.sleep(0.1)


def service_env(settings: Settings) -> dict[str, str]:
    k = settings.kafka
    return {
        **os.environ,
        "JOBWIRE_KAFKA__BOOTSTRAP_SERVERS": k.bootstrap_servers,
        "JOBWIRE_KAFKA__POSTINGS_TOPIC": k.postings_topic,
        "JOBWIRE_KAFKA__ARTICLES_TOPIC": k.articles_topic,
        "JOBWIRE_KAFKA__DEAD_LETTER_TOPIC": k.dead_letter_topic,
        "JOBWIRE_KAFKA__GROUP_ID": k.group_id,
        "JOBWIRE_KAFKA__BATCH_TIMEOUT_MS": "100",
        "JOBWIRE_KAFKA__BATCH_MAX_RECORDS": "50",
        "JOBWIRE_STORE__URL": settings.store.url,
        "JOBWIRE_API__PORT": "0",
        "JOBWIRE_LOG__FORMAT": "json",
        "JOBWIRE_DELIVERY__LEASE_S": "2",
        "JOBWIRE_DELIVERY__BACKOFF_BASE_S": "0.2",
        "JOBWIRE_DELIVERY__POLL_INTERVAL_S": "0.1",
    }
