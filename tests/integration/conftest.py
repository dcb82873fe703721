"""Real servers for the integration tests: Kafka, Prometheus, Chromium and a Matrix homeserver
once per session; sinks, scrape jobs, browser pages and Matrix rooms per test."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from playwright.async_api import Browser, Page

from config.settings import KafkaSettings, Settings
from consumers.connection import client_options
from devstack.browser import launch_browser, save_screenshot
from devstack.kafka import KafkaBroker, start_kafka
from devstack.prometheus import PrometheusServer, ScrapeJob, running_prometheus
from devstack.sinks import HttpSink, SmtpSink
from devstack.synapse import (
    MatrixAccount,
    MatrixClient,
    MatrixRoom,
    SynapseServer,
    open_room,
    start_synapse,
)
from service.app import Service
from service.delivery import Notifier
from service.store import Store
from service.subscriptions import SubscriptionIn
from tests.conftest import eventually

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


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """One Matrix homeserver for the session (about 1.3 s to start; 20 s to install, once)."""
    server = start_synapse(tmp_path_factory.mktemp("synapse"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def matrix_people(synapse: SynapseServer) -> tuple[MatrixAccount, MatrixClient]:
    """jobwire's bot account (what a matrix:// URL logs in as) and a person who reads."""
    bot = synapse.register("jobwire-bot", secrets.token_urlsafe(16))
    reader = synapse.client(synapse.register("reader", secrets.token_urlsafe(16)))
    return bot, reader


@pytest.fixture
def matrix_room(
    synapse: SynapseServer, matrix_people: tuple[MatrixAccount, MatrixClient]
) -> MatrixRoom:
    """A fresh room per test: the reader in it, the bot invited; `matrix_room.url()` for Apprise."""
    bot, reader = matrix_people
    return open_room(synapse, bot, reader, f"alerts-{uuid.uuid4().hex[:12]}")


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


async def dead_letters(
    kafka: KafkaSettings, expected: int, within_s: float = 60.0
) -> list[tuple[bytes, dict[str, str]]]:
    """The first `expected` messages of the dead-letter topic, each (value, its headers)."""
    consumer = AIOKafkaConsumer(
        kafka.dead_letter_topic, **client_options(kafka), auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[tuple[bytes, dict[str, str]]] = []
    try:
        async with asyncio.timeout(within_s):
            while len(out) < expected:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend(
                        (r.value or b"", {k: v.decode() for k, v in r.headers}) for r in records
                    )
    finally:
        await consumer.stop()
    return out


def postings(prefix: str, count: int, employer: str = "ACME") -> list[dict[str, object]]:
    """`count` postings with ids and titles numbered under `prefix`."""
    return [
        {
            "id": f"{prefix}-{n:05d}",
            "employer": employer,
            "title": f"Role {prefix} {n:05d}",
            "city": "Portland",
        }
        for n in range(count)
    ]


def posting(n: int, employer: str) -> bytes:
    """One posting as a publisher sends it."""
    fields = {"id": f"{employer}-{n:03d}", "employer": employer, "title": f"Role {n}"}
    return orjson.dumps({**fields, "city": "Portland"})


async def publish_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Publish `values` as they are (malformed ones too), each under a key of its own."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value, key=str(n).encode()) for n, value in enumerate(values)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def publish(bootstrap: str, topic: str, events: list[dict[str, object]]) -> None:
    """Publish events as JSON."""
    await publish_raw(bootstrap, topic, [orjson.dumps(event) for event in events])


async def subscribe(store_url: str, **fields: object) -> str:
    """Add a subscription to the store at `store_url` (as an operator would); its id."""
    store = await Store.open(store_url)
    try:
        return (await store.subscriptions.add(SubscriptionIn.model_validate(fields))).id
    finally:
        await store.close()


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
        "JOBWIRE_TARGETS__ALLOW_PRIVATE_HOSTS": str(settings.targets.allow_private_hosts).lower(),
    }


def start_jobwire(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`jobwire run` as operators run it, a process of its own, its output in `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen([str(JOBWIRE), "run"], env=env, stdout=log, stderr=log)


def stop_jobwire(process: subprocess.Popen[bytes], within_s: float = 30) -> None:
    """SIGTERM, as a supervisor stops it: it must exit within `within_s`. If it does not, it is
    killed, so a failed test leaves no `jobwire run` behind (one ran on for minutes), and the
    test fails saying so."""
    process.terminate()
    try:
        process.wait(within_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"jobwire run did not stop within {within_s:g} s of SIGTERM") from None


async def listening_url(log_path: Path) -> str:
    """The API's address, from the service's own `api.listening` log line."""
    found: list[str] = []

    async def listening() -> bool:
        for line in (await asyncio.to_thread(log_path.read_text)).splitlines():
            if '"api.listening"' in line:
                found.append(str(orjson.loads(line)["url"]))
                return True
        return False

    await eventually(listening)
    return found[0]


# -- Prometheus and Chromium: one of each per session, shared by the tests ------------------


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One real Prometheus for the session; each test adds its own targets with `scrape`."""
    with running_prometheus(workdir=tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.fixture
def scrape(
    prometheus: PrometheusServer, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ScrapeJob]]:
    """`scrape("127.0.0.1:PORT", metrics_path="/metrics")`: the session's Prometheus scrapes
    those targets until the test ends. Their series carry `job="<test name>-N"` (the returned
    job's `selector`), so a query sees this test's series only. The first scrape comes within
    ~6 s; `await prometheus.api.wait_for_targets(job.name)` waits for it."""
    jobs: list[ScrapeJob] = []

    def add(*targets: str, metrics_path: str = "/metrics") -> ScrapeJob:
        job = prometheus.scrape(targets, metrics_path, job=f"{request.node.name}-{len(jobs)}")
        jobs.append(job)
        return job

    yield add
    for job in jobs:
        job.remove()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the session (on the session's event loop)."""
    async with launch_browser() as chromium:
        yield chromium


_call_failed = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    # Remembered for `page`, which saves a screenshot of a page a failed test leaves behind.
    report = yield
    if call.when == "call" and call.excinfo is not None:
        item.stash[_call_failed] = True
    return report


@pytest.fixture
async def page(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    """A page in a fresh browser context (no cookies or storage from other tests). When the
    test fails, the page as it was is saved as `failure.png` in the test's tmp_path."""
    context = await browser.new_context()
    try:
        tab = await context.new_page()
        yield tab
        if request.node.stash.get(_call_failed, False) and not tab.is_closed():
            print(f"screenshot of the page: {await save_screenshot(tab, tmp_path / 'failure.png')}")
    finally:
        await context.close()
