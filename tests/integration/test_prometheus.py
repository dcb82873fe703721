"""A real Prometheus scrapes a running jobwire while events flow, and what it stores matches
what the test published: the lag while the store holds the pipeline up, then every event
consumed, dead-lettered, matched, delivered or dead. Every query of the Grafana dashboard
answers from those series.

The session's Prometheus (devstack/prometheus.py) is shared; this test's series carry its own
`job` label. The scrape target is registered before jobwire starts, so the ~6 s Prometheus
takes to pick up a new target passes while jobwire starts.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from devstack.kafka import KafkaBroker
from devstack.prometheus import PrometheusServer, Sample, ScrapeJob
from devstack.sinks import HttpSink
from tests.conftest import make_settings
from tests.integration.conftest import (
    chat_target,
    posting,
    publish_raw,
    running,
    service_env,
    start_jobwire,
    stop_jobwire,
    subscribe,
)
from tests.integration.test_readiness import until_readiness

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "jobwire.json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def equals(expected: float) -> Callable[[list[Sample]], bool]:
    return lambda found: len(found) == 1 and found[0].value == expected


async def test_prometheus_sees_lag_deliveries_and_dead_counts_as_published(
    kafka: KafkaBroker,
    prometheus: PrometheusServer,
    scrape: Callable[..., ScrapeJob],
    http_sink: HttpSink,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    settings = make_settings(tmp_path, kafka.bootstrap)
    broken = HttpSink()
    broken.start()
    broken.fail_with(500)
    await subscribe(settings.store.url, employers=["ACME"], notify=[chat_target(http_sink, "ok")])
    await subscribe(settings.store.url, employers=["Initech"], notify=[chat_target(broken, "x")])
    delivered, dead, malformed = 40, 6, 4
    stream = (
        [posting(n, "ACME") for n in range(delivered)]
        + [posting(n, "Initech") for n in range(dead)]
        + [b"", b"{not json", b"[1, 2]", b'{"id": "no-employer"}'][:malformed]
        + [posting(n, "Nobody") for n in range(10)]
    )
    await publish_raw(kafka.bootstrap, settings.kafka.postings_topic, stream)

    port = free_port()
    job = scrape(f"127.0.0.1:{port}")
    at = job.selector  # {job="<this test>"}
    env = {
        **service_env(settings),
        "JOBWIRE_API__PORT": str(port),
        "JOBWIRE_API__SIGNING_SECRET": "test-signing-secret",  # nothing written at start
        "JOBWIRE_KAFKA__BATCH_MAX_RECORDS": "5",
        "JOBWIRE_DELIVERY__MAX_ATTEMPTS": "2",
        "JOBWIRE_DELIVERY__BACKOFF_BASE_S": "0.1",
        "JOBWIRE_DELIVERY__BACKOFF_CAP_S": "0.3",
        "JOBWIRE_METRICS__LEDGER_INTERVAL_S": "1",
    }
    # The store busy with another writer: the first batch waits in the pipeline, the second is
    # prepared behind it (consumers/kafka.py keeps two in hand), and the rest of what was
    # published waits in Kafka, where the lag shows it.
    database = str(settings.store.url).removeprefix("sqlite+aiosqlite:///")
    writer = sqlite3.connect(database, isolation_level=None, timeout=10)
    writer.execute("BEGIN IMMEDIATE")
    api = prometheus.api
    process = start_jobwire(env, tmp_path / "jobwire.log")
    try:
        [lag] = await api.wait_for(
            f"sum(jobwire_consumer_lag_messages{at})", equals(len(stream) - 2 * 5), timeout_s=25
        )
        writer.rollback()
        lag_seen_s = time.monotonic() - started

        await api.wait_for(f"sum(jobwire_consumer_lag_messages{at})", equals(0))
        await api.wait_for(
            f'sum(jobwire_deliveries_total{{outcome="sent",{at[1:]})', equals(delivered)
        )
        await api.wait_for(f'sum(jobwire_deliveries_total{{outcome="dead",{at[1:]})', equals(dead))
        await api.wait_for(f'jobwire_ledger_rows{{status="dead",{at[1:]}', equals(dead))
        await api.wait_for(f'jobwire_ledger_rows{{status="sent",{at[1:]}', equals(delivered))
        [consumed] = await api.query(f"sum(jobwire_events_consumed_total{at})")
        [parked] = await api.query(f"sum(jobwire_events_dead_lettered_total{at})")
        [matches] = await api.query(f"sum(jobwire_matches_recorded_total{at})")
        [latency] = await api.query(f"sum(jobwire_delivery_latency_seconds_count{at})")
        last_event = f"max(jobwire_consumer_last_event_timestamp_seconds{at})"
        [since] = await api.query(f"time() - {last_event}")
        reasons = await api.query(f"jobwire_events_dead_lettered_total{at}")
        [kafka_up] = await api.query(f"jobwire_kafka_up{at}")
        [store_up] = await api.query(f"jobwire_store_up{at}")
        [targets_dead] = await api.query(f"jobwire_targets_dead{at}")

        async with httpx.AsyncClient() as client:
            await until_readiness(client, f"http://127.0.0.1:{port}", 200, 10)
        await api.wait_for(f'jobwire_api_requests_total{{route="/readyz",{at[1:]}')
        empty = [query for query in dashboard_queries() if not await api.query(query)]
        took = time.monotonic() - started
    finally:
        writer.close()
        stop_jobwire(process)
        broken.stop()

    with capsys.disabled():
        print(
            f"\n[prometheus] lag {lag.value:.0f} seen {lag_seen_s:.1f} s after the start; "
            f"the whole test {took:.1f} s"
        )
    assert consumed.value == len(stream) - malformed
    assert parked.value == malformed
    assert {s.labels["reason"] for s in reasons} == {
        "empty",
        "not_json",
        "not_an_object",
        "invalid_fields",
    }
    assert matches.value == delivered + dead
    assert latency.value == delivered
    assert since.value < 60
    assert (kafka_up.value, store_up.value, targets_dead.value) == (1, 1, 1)
    assert not empty, f"dashboard queries without data: {empty}"


def dashboard_queries() -> list[str]:
    """The dashboard's queries, as Grafana would send them over a short time range."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [
        target["expr"].replace("$__rate_interval", "1m")
        for panel in panels
        for target in panel.get("targets", [])
    ]


async def test_metrics_have_a_port_of_their_own_when_the_api_is_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # no broker: /metrics must not wait for one
    settings.api.enabled = False
    settings.metrics.port = 0
    async with running(settings) as service:
        assert service.api_url is None
        assert service.metrics_url is not None
        async with httpx.AsyncClient() as client:
            page = await client.get(f"{service.metrics_url}/metrics")
            other = await client.get(f"{service.metrics_url}/subscriptions")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    assert "jobwire_kafka_up 0.0" in page.text  # honest: no broker answers
    assert "jobwire_store_up 1.0" in page.text
    assert other.status_code == 404  # only /metrics: the API is off
