"""API processes (JOBWIRE_API__PROCESSES): real processes serving real HTTP on one socket.

Here only the API processes listen on the socket (the service's own API is not served), so
every request reaches one of them; what the service keeps for itself (Kafka's state, the
metrics) is a plain value and a real `Metrics` the test controls. tests/integration/
test_api_processes_live.py runs them inside `jobwire run`, beside the service's own API.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from config.settings import MailSettings, Settings
from devstack.sinks import HttpSink, SmtpSink
from service.accounts import add_user
from service.child_pipes import take
from service.operations.metrics import Metrics
from service.store import Store
from service.web import bind
from service.web import processes as processes_module
from service.web.processes import ApiProcesses, serve_api_process
from tests.conftest import eventually, make_settings, sign_up_on_the_page

pytestmark = pytest.mark.slow


@dataclass
class Running:
    url: str
    processes: ApiProcesses
    metrics: Metrics
    kafka: dict[str, bool]
    stop: asyncio.Event
    task: asyncio.Task[None]


async def _migrated(settings: Settings) -> None:
    store = await Store.open(settings.store.url)  # as the service does before starting them
    await store.close()


@contextlib.asynccontextmanager
async def api_processes(
    tmp_path: Path, count: int = 2, settings: Settings | None = None
) -> AsyncIterator[Running]:
    settings = settings or make_settings(tmp_path)
    settings.api.processes = count + 1  # the service's own, not served here, and `count`
    await _migrated(settings)
    # The service's socket gives the port; closed once they serve, so no connection waits in
    # a socket nobody answers here.
    sock = bind("127.0.0.1", 0, shared=True)
    port = sock.getsockname()[1]
    metrics, kafka, stop = Metrics(), {"connected": False}, asyncio.Event()
    processes = ApiProcesses(settings, port, metrics, lambda: kafka["connected"])
    await processes.start()
    sock.close()
    task = asyncio.create_task(processes.run(stop))
    running = Running(f"http://127.0.0.1:{port}", processes, metrics, kafka, stop, task)
    try:
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _get(url: str, path: str) -> httpx.Response | None:
    """One request on a connection of its own, so the kernel may hand it to any process."""
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            return await client.get(path)
    except httpx.TransportError:
        return None


async def _answers(url: str, path: str, status: int) -> bool:
    response = await _get(url, path)
    return response is not None and response.status_code == status


def _counted(metrics: Metrics, route: str) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "jobwire_api_requests"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("route") == route
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(FileNotFoundError):
        # A child that exited but was not yet reaped is gone for every purpose here.
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return False


async def test_readiness_in_every_api_process_follows_the_services_kafka(
    tmp_path: Path,
) -> None:
    async with api_processes(tmp_path) as running:

        async def all_say(status: int, kafka: str) -> bool:
            answers = [await _get(running.url, "/readyz") for _ in range(10)]
            return all(
                a is not None and a.status_code == status and a.json()["kafka"] == kafka
                for a in answers
            )

        assert await all_say(503, "not connected")
        running.kafka["connected"] = True
        await eventually(lambda: all_say(200, "ok"), within_s=5)
        running.kafka["connected"] = False
        await eventually(lambda: all_say(503, "not connected"), within_s=5)


async def test_every_answer_an_api_process_gives_is_counted_by_the_service(
    tmp_path: Path,
) -> None:
    async with api_processes(tmp_path) as running:
        for _ in range(30):  # not ready (Kafka is not connected): counted as any answer
            assert await _answers(running.url, "/readyz", 503)
        for _ in range(5):  # refused: counted too
            assert await _answers(running.url, "/subscriptions", 401)

        async def all_counted() -> bool:
            return (
                _counted(running.metrics, "/readyz") == 30
                and _counted(running.metrics, "/subscriptions") == 5
            )

        await eventually(all_counted, within_s=5)


async def test_a_scrape_an_api_process_accepts_shows_the_services_metrics(
    tmp_path: Path,
) -> None:
    async with api_processes(tmp_path) as running:
        running.metrics.api_request("/only-in-the-service", "GET", 200, 0.01)
        for _ in range(5):
            scraped = await _get(running.url, "/metrics")
            assert scraped is not None
            assert scraped.status_code == 200
            assert 'route="/only-in-the-service"' in scraped.text
            assert scraped.headers["content-type"].startswith("text/plain")


async def test_an_api_process_that_dies_is_started_again(tmp_path: Path) -> None:
    async with api_processes(tmp_path, count=1) as running:
        (first,) = running.processes.pids
        os.kill(first, signal.SIGKILL)

        async def replaced() -> bool:
            pids = running.processes.pids
            return bool(pids) and pids[0] != first and await _answers(running.url, "/healthz", 200)

        await eventually(replaced, within_s=15)


async def test_stopping_the_service_stops_its_api_processes(tmp_path: Path) -> None:
    async with api_processes(tmp_path) as running:
        pids = running.processes.pids
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)
    assert not any(_alive(pid) for pid in pids)
    assert running.processes.pids == []


async def test_an_api_process_whose_service_is_gone_stops_and_frees_the_port(
    tmp_path: Path,
) -> None:
    """A service killed outright (SIGKILL, the OOM killer) cannot stop its API processes; each
    notices its pipe close and stops, so none is left answering on the service's port."""
    settings = make_settings(tmp_path)
    await _migrated(settings)
    sock = bind("127.0.0.1", 0, shared=True)
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    context = multiprocessing.get_context("spawn")
    service_end, process_end = context.Pipe()
    process = context.Process(
        target=serve_api_process, args=(settings, port, process_end, 1, True), daemon=True
    )
    process.start()
    process_end.close()
    try:
        assert await asyncio.to_thread(service_end.poll, 60)  # it serves
        sock.close()  # only the process holds the port now
        assert await _answers(url, "/healthz", 200)
        service_end.close()  # the service is gone
        await asyncio.to_thread(process.join, 15)
        assert process.exitcode == 0
        assert not await _answers(url, "/healthz", 200)
    finally:
        if process.is_alive():
            process.kill()


async def test_a_sign_up_and_a_test_alert_an_api_process_answers_go_out_from_it(
    tmp_path: Path,
) -> None:
    """The page's mail and a subscription's test alert are sent by the process that answered
    (the service's own sender is not there to ask)."""
    settings = make_settings(tmp_path)
    with SmtpSink() as smtp, HttpSink() as chat:
        settings.mail = MailSettings(
            url=SecretStr(f"mailto://127.0.0.1:{smtp.port}?from=jobwire@example.com")
        )
        async with (
            api_processes(tmp_path, count=1, settings=settings) as running,
            httpx.AsyncClient(base_url=running.url, timeout=10) as browser,
        ):
            signed_up = await sign_up_on_the_page(browser, "ana@example.com")
            assert signed_up.status_code == 200, signed_up.text
            (confirm,) = await asyncio.to_thread(smtp.wait_for, 1, 15.0)
            assert f"{running.url}/confirm/" in confirm.body

            store = await Store.open(settings.store.url)
            made = await add_user(store, "bob")
            await store.close()
            assert made is not None
            auth = {"Authorization": f"Bearer {made[1]}"}
            created = await browser.post(
                "/subscriptions",
                headers=auth,
                json={"employers": ["ACME"], "notify": [f"json://127.0.0.1:{chat.port}/bob"]},
            )
            assert created.status_code == 201, created.text
            tested = await browser.post(f"/subscriptions/{created.json()['id']}/test", headers=auth)
            assert tested.status_code == 200, tested.text
            assert tested.json()["ok"] is True
            (alert,) = await asyncio.to_thread(chat.wait_for, 1, 15.0)
            assert alert.path == "/bob"


async def test_an_api_process_that_cannot_open_the_store_says_why_in_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path)  # a store never migrated: this process may not do it
    sock = bind("127.0.0.1", 0, shared=True)
    context = multiprocessing.get_context("spawn")
    service_end, process_end = context.Pipe()
    process = context.Process(
        target=serve_api_process,
        args=(settings, sock.getsockname()[1], process_end, 1, True),
        daemon=True,
    )
    process.start()
    process_end.close()
    try:
        await asyncio.to_thread(process.join, 60)
        assert process.exitcode == 1
    finally:
        sock.close()
        service_end.close()
        if process.is_alive():
            process.kill()
    captured = capfd.readouterr()
    failed = [line for line in captured.out.splitlines() if "api.process_failed" in line]
    assert len(failed) == 1, captured.out
    assert "jobwire db upgrade" in failed[0]
    assert "Traceback" not in captured.out + captured.err


async def test_an_api_process_logs_that_it_serves_before_the_service_hears_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The service logs api.listening on hearing its processes serve; each process's own
    line must already be written then, or a shared log shows them in the wrong order (a
    load balancer's operator reading it would think the service listened before it could
    answer). CI once saw exactly that."""
    ours, theirs = multiprocessing.Pipe()
    logged_when_told: list[bool] = []
    told = processes_module.put

    def put(conn: Connection, message: object) -> None:
        logged_when_told.append(any(e["event"] == "api.process_serving" for e in logs))
        told(conn, message)

    monkeypatch.setattr(processes_module, "put", put)
    service = processes_module._ToService(ours, kafka=True)
    try:
        with capture_logs() as logs:
            service.serving()
        assert take(theirs) == ("serving", None)
        assert logged_when_told == [True]
    finally:
        service.close()
        theirs.close()
