"""`jobwire run` with JOBWIRE_API__PROCESSES=2, as operators run it, with real Kafka: one port,
two processes answering it, and to a client it is one service."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from devstack.kafka import KafkaBroker
from devstack.prometheus import PrometheusServer, ScrapeJob
from devstack.sinks import HttpSink
from service.accounts import add_user
from service.store import Store
from tests.conftest import eventually, make_settings
from tests.integration.conftest import (
    chat_target,
    listening_url,
    publish,
    service_env,
    start_jobwire,
    stop_jobwire,
)
from tests.integration.test_prometheus import equals, free_port

pytestmark = pytest.mark.integration

CREATES = 24


def _answers_by_process(log_path: Path) -> dict[str, set[str]]:
    """The routes each process answered, from the log: the service's own lines carry no
    `process`, an API process's lines say which."""
    found: dict[str, set[str]] = {}
    for line in log_path.read_text().splitlines():
        if '"api.request"' in line:
            entry = orjson.loads(line)
            found.setdefault(entry.get("process", "service"), set()).add(entry["route"])
    return found


def _counted(page: str, route: str, method: str) -> float:
    pattern = rf'^jobwire_api_requests_total\{{[^}}]*route="{re.escape(route)}"[^}}]*\}} (\S+)$'
    return sum(
        float(m.group(1))
        for m in re.finditer(pattern, page, re.MULTILINE)
        if f'method="{method}"' in m.group(0)
    )


async def test_two_api_processes_serve_one_port_as_one_service(
    kafka: KafkaBroker, http_sink: HttpSink, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, kafka.bootstrap)
    store = await Store.open(settings.store.url)
    created = await add_user(store, "ana")
    await store.close()
    assert created is not None
    auth = {"Authorization": f"Bearer {created[1]}"}
    env = {**service_env(settings), "JOBWIRE_API__PROCESSES": "2"}
    log_path = tmp_path / "jobwire.log"
    process = start_jobwire(env, log_path)
    try:
        url = await listening_url(log_path)
        await eventually(lambda: _logged(log_path, '"api.process_serving"'))

        async def fresh(method: str, path: str, **kwargs: object) -> httpx.Response:
            # A connection of its own each time, so the kernel may hand it to either process.
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                return await client.request(method, path, **kwargs)  # type: ignore[arg-type]

        # Subscriptions made through either process: each one's alert arrives.
        for n in range(CREATES):
            made = await fresh(
                "POST",
                "/subscriptions",
                headers=auth,
                json={"employers": [f"Employer {n}"], "notify": [chat_target(http_sink, f"s{n}")]},
            )
            assert made.status_code == 201, made.text
        listed = await fresh("GET", "/subscriptions", headers=auth)
        assert len(listed.json()) == CREATES

        # Ready from every process once Kafka is connected.
        async def all_ready() -> bool:
            return all([(await fresh("GET", "/readyz")).status_code == 200 for _ in range(10)])

        await eventually(all_ready, within_s=60)
        await asyncio.sleep(settings.store.refresh_interval_s * 5)  # the matcher learns them
        await publish(
            kafka.bootstrap,
            settings.kafka.postings_topic,
            [
                {"id": f"p{n}", "employer": f"Employer {n}", "title": "Cashier", "city": "Ely"}
                for n in range(CREATES)
            ],
        )
        received = await asyncio.to_thread(http_sink.wait_for, CREATES, 60.0)
        assert sorted(r.path for r in received) == sorted(f"/s{n}" for n in range(CREATES))

        # Both processes answered, and the service counted every answer, whichever gave it.
        answered = _answers_by_process(log_path)
        assert {"service", "api-1"} <= answered.keys(), answered
        assert all("/subscriptions" in routes for routes in answered.values()), answered

        async def all_counted() -> bool:
            page = (await fresh("GET", "/metrics")).text
            return _counted(page, "/subscriptions", "POST") == CREATES

        await eventually(all_counted, within_s=10)
    finally:
        stop_jobwire(process)
    log = log_path.read_text()
    assert '"api.processes_stopped"' in log
    assert '"api.process_stopped"' in log
    # The service said it listened only once its API process served: connections a client
    # opens at once (a load balancer's kept ones) can reach both, not the service's alone.
    assert log.index('"api.process_serving"') < log.index('"api.listening"')


async def test_prometheus_counts_every_answer_of_two_api_processes_once(
    kafka: KafkaBroker,
    prometheus: PrometheusServer,
    scrape: Callable[..., ScrapeJob],
    tmp_path: Path,
) -> None:
    """A real Prometheus scrapes the one port, whichever process its scrapes reach: it sees
    the service's own series (Kafka's state) and every answer counted once."""
    settings = make_settings(tmp_path, kafka.bootstrap)
    port = free_port()
    job = scrape(f"127.0.0.1:{port}")
    at = job.selector[1:]  # 'job="<this test>"}'
    env = {
        **service_env(settings),
        "JOBWIRE_API__PROCESSES": "2",
        "JOBWIRE_API__PORT": str(port),
    }
    log_path = tmp_path / "jobwire.log"
    process = start_jobwire(env, log_path)
    try:
        await listening_url(log_path)
        url = f"http://127.0.0.1:{port}"
        for _ in range(30):
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                assert (await client.get("/healthz")).status_code == 200
        answered = _answers_by_process(log_path)
        assert {"service", "api-1"} <= answered.keys(), answered
        api = prometheus.api
        await api.wait_for(
            f'sum(jobwire_api_requests_total{{route="/healthz",{at})', equals(30), timeout_s=30
        )
        await api.wait_for(f"jobwire_kafka_up{{{at}", equals(1), timeout_s=30)
    finally:
        stop_jobwire(process)


async def _logged(log_path: Path, marker: str) -> bool:
    return marker in await asyncio.to_thread(log_path.read_text)
