"""API processes: more processes answering the API and the pages on the service's one port.

One process answers about 450-650 subscription creates a second on this project's 2-core
benchmark machine, each a couple of milliseconds of its CPU (docs/performance.md), while the
service's other core idles when no events flow. With JOBWIRE_API__PROCESSES=N the service
starts N-1 API processes beside itself, each listening on the same port (SO_REUSEPORT): the
kernel spreads new connections over them evenly. (One socket shared by all of them, as
uvicorn's workers do, was tried first: whichever process was awake took every connection, and
a benchmark's eight kept connections all went to the service's own, which then did all the
work.) The service says it listens only once they all serve.

An API process opens the store itself (the service migrated it before starting any), builds
the same app, and serves until the service stops it, or until the service is gone: it watches
its pipe to the service and stops when that closes, so a service killed outright leaves no
process holding its port. One that dies is started again.

What lives only in the service's process reaches the others through that pipe:

- **Readiness.** `/readyz` says whether Kafka is connected; the service tells each process
  when that changes.
- **Metrics.** Each process sends the answers it gave (route, method, status, time) in
  batches, and the service counts them as its own: `jobwire_api_requests_total` is the
  instance's. A scrape of `/metrics` that another process accepted is answered with the
  service's page, which that process asks the service for.

What each process keeps for itself: its rate limits (one key gets up to N times the rate, as
with N instances behind a load balancer; docs/security.md), its test sends (through Apprise in
the process, with the same target policy), and the sign-up mail it sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
import uvloop
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.settings import Settings
from consumers.pacing import Backoff, wait_or_stop
from service import interpreter
from service.child_pipes import put, take
from service.delivery import AppriseNotifier
from service.logs import configure_logging
from service.operations.metrics import Metrics
from service.operations.metrics_endpoint import PATH as METRICS_PATH
from service.store import Store, describe_failure
from service.system_mail import MailRouting, SystemMail
from service.targets import TargetPolicy
from service.unsubscribe import load_links
from service.web.app import create_api
from service.web.context import ApiContext
from service.web.server import bind, on_each_answer, serve

log = structlog.get_logger("jobwire.api")

Answer = tuple[str, str, int, float]  # route, method, status, seconds

# An API process sends its answers at most this often (and at once when this many are waiting).
ANSWERS_EVERY_S = 0.5
ANSWERS_AT_MOST = 500
# How long a scrape that another process accepted waits for the service's page.
SCRAPE_TIMEOUT_S = 5.0
# How long a stopping API process may take to finish its requests and its mail.
STOP_TIMEOUT_S = 10.0
# How often the service looks at Kafka's state for the API processes' readiness.
READINESS_EVERY_S = 0.25
# How long the service waits for its API processes to serve before it says it listens.
START_TIMEOUT_S = 60.0
# An API process alive this long has settled: if it dies later, its restarts pause 1 s again.
SETTLED_S = 60.0


# -- the service's side ----------------------------------------------------------------------


@dataclass
class _Child:
    number: int
    process: Any
    conn: multiprocessing.connection.Connection
    serving: asyncio.Future[None]
    started: float = field(default_factory=time.monotonic)


class ApiProcesses:
    """The API processes beside the service: started, told Kafka's state, their answers
    counted, their scrapes answered, started again when one dies, stopped with the service."""

    def __init__(
        self,
        settings: Settings,
        port: int,
        metrics: Metrics,
        kafka_connected: Callable[[], bool],
    ) -> None:
        self._settings = settings
        self._port = port  # the service's: with port 0 in the settings, the one it was given
        self._metrics = metrics
        self._kafka_connected = kafka_connected
        self._context = multiprocessing.get_context("spawn")
        self._children: dict[int, _Child] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kafka = False

    @property
    def pids(self) -> list[int]:
        return [child.process.pid for child in self._children.values()]

    async def start(self) -> None:
        """Start the processes and wait until each serves (or START_TIMEOUT_S has passed: then
        the service goes on without the late ones, which are waited for no longer)."""
        self._loop = asyncio.get_running_loop()
        self._kafka = self._kafka_connected()
        count = self._settings.api.processes - 1
        for number in range(1, count + 1):
            self._spawn(number)
        waiting = [child.serving for child in self._children.values()]
        _, late = await asyncio.wait(waiting, timeout=START_TIMEOUT_S)
        if late:
            log.error("api.processes_late", late=len(late), timeout_s=START_TIMEOUT_S)
        alive = sum(child.process.is_alive() for child in self._children.values())
        log.info("api.processes_started", processes=alive, pids=self.pids)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the processes running and informed until `stop`, then stop them."""
        pauses = {number: Backoff() for number in self._children}
        try:
            while not await wait_or_stop(stop, READINESS_EVERY_S):
                self._tell_readiness()
                for number, child in list(self._children.items()):
                    if child.process.is_alive():
                        if time.monotonic() - child.started > SETTLED_S:
                            pauses[number] = Backoff()
                        continue
                    self._forget(child)
                    pause = pauses[number]
                    log.error(
                        "api.process_lost",
                        process=number,
                        exit_code=child.process.exitcode,
                        restart_in_s=pause.delay_s,
                    )
                    await wait_or_stop(stop, pause.delay_s)
                    pause.grow()
                    if not stop.is_set():
                        self._spawn(number)
        finally:
            await self._stop_all()

    def _spawn(self, number: int) -> None:
        assert self._loop is not None
        mine, theirs = self._context.Pipe()
        process = self._context.Process(
            target=serve_api_process,
            args=(self._settings, self._port, theirs, number, self._kafka),
            name=f"jobwire-api-{number}",
            daemon=True,
        )
        process.start()
        theirs.close()
        child = _Child(number, process, mine, self._loop.create_future())
        self._children[number] = child
        self._loop.add_reader(mine.fileno(), self._heard, child)

    def _heard(self, child: _Child) -> None:
        try:
            while child.conn.poll():
                kind, content = take(child.conn)
                if kind == "answers":
                    for answer in content:
                        self._metrics.api_request(*answer)
                elif kind == "scrape":
                    put(child.conn, ("metrics", generate_latest(self._metrics.registry)))
                elif kind == "serving" and not child.serving.done():
                    child.serving.set_result(None)
        except (EOFError, OSError):
            self._forget(child)  # it died; the watch starts another

    def _tell_readiness(self) -> None:
        kafka = self._kafka_connected()
        if kafka == self._kafka:
            return
        self._kafka = kafka
        for child in list(self._children.values()):
            try:
                put(child.conn, ("kafka", kafka))
            except OSError:
                self._forget(child)

    def _forget(self, child: _Child) -> None:
        """Stop listening to a child that died (the watch loop notices and starts another)."""
        if not child.serving.done():
            child.serving.set_result(None)  # it will not: nobody waits for it any longer
        if child.conn.closed:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(child.conn.fileno())
        child.conn.close()

    async def _stop_all(self) -> None:
        children = list(self._children.values())
        for child in children:
            if child.process.is_alive():
                child.process.terminate()  # SIGTERM: finish the requests in progress, then stop
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in children:
            while child.process.is_alive() and time.monotonic() < deadline:
                if not child.conn.closed:
                    self._heard(child)  # its last answers, still counted
                await asyncio.sleep(0.05)
            if child.process.is_alive():
                log.warning("api.process_killed", process=child.number)
                child.process.kill()
            child.process.join(timeout=1)
            self._forget(child)
        self._children = {}
        if children:
            log.info("api.processes_stopped", processes=len(children))


# -- an API process's side -------------------------------------------------------------------


def serve_api_process(
    settings: Settings,
    port: int,
    conn: multiprocessing.connection.Connection,
    number: int,
    kafka: bool,
) -> None:
    """An API process's life: serve the API on the service's `port` until SIGTERM, SIGINT or
    the service's end of `conn` closing."""
    configure_logging(settings.log.format, settings.log.level)
    structlog.contextvars.bind_contextvars(process=f"api-{number}")
    interpreter.hand_over_promptly()
    try:
        uvloop.run(_serve(settings, bind(settings.api.host, port, shared=True), conn, kafka))
    except Exception as exc:  # the store or the port refused: one line, then the service's
        # watch starts this process again after a pause
        log.error("api.process_failed", error=describe_failure(exc))
        raise SystemExit(1) from None


class _ToService:
    """This process's end of the pipe: its answers in batches, scrapes, Kafka's state."""

    def __init__(self, conn: multiprocessing.connection.Connection, kafka: bool) -> None:
        self.conn = conn
        self.kafka = kafka
        self.gone = asyncio.Event()
        self._answers: list[Answer] = []
        self._scrapes: list[asyncio.Future[bytes]] = []
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._heard)
        self._flusher = self._loop.create_task(self._flush_every())

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        self._answers.append((route, method, status, seconds))
        if len(self._answers) >= ANSWERS_AT_MOST:
            self.flush()

    def flush(self) -> None:
        if not self._answers or self.gone.is_set():
            return
        answers, self._answers = self._answers, []
        try:
            put(self.conn, ("answers", answers))
        except OSError:
            self._lost()

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(ANSWERS_EVERY_S)
            self.flush()

    async def metrics_page(self) -> bytes:
        future: asyncio.Future[bytes] = self._loop.create_future()
        self._scrapes.append(future)
        try:
            put(self.conn, ("scrape", None))
        except OSError:
            self._lost()
        return await asyncio.wait_for(future, SCRAPE_TIMEOUT_S)

    def _heard(self) -> None:
        try:
            while self.conn.poll():
                kind, content = take(self.conn)
                if kind == "kafka":
                    self.kafka = content
                elif kind == "metrics":
                    while self._scrapes:
                        future = self._scrapes.pop(0)
                        if not future.done():
                            future.set_result(content)
                            break
        except (EOFError, OSError):
            self._lost()

    def _lost(self) -> None:
        """The service is gone: stop, so no process is left holding its port."""
        if self.gone.is_set():
            return
        self.gone.set()
        self._loop.remove_reader(self.conn.fileno())
        for future in self._scrapes:
            if not future.done():
                future.set_exception(ConnectionError("the service is gone"))

    def serving(self) -> None:
        """Say this process serves: in the log, then to the service. In that order, so the
        service's api.listening, which it logs on hearing this, comes after this process's
        line in a log the two share (the order things happened)."""
        log.info("api.process_serving", pid=os.getpid())
        try:
            put(self.conn, ("serving", None))
        except OSError:
            self._lost()

    def close(self) -> None:
        self.flush()
        self._flusher.cancel()
        if not self.gone.is_set():
            self._loop.remove_reader(self.conn.fileno())
        self.conn.close()


async def _serve(
    settings: Settings,
    sock: socket.socket,
    conn: multiprocessing.connection.Connection,
    kafka: bool,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    service = _ToService(conn, kafka)
    store = await Store.open(settings.store.url, False, settings.store.keys())
    policy = TargetPolicy.from_settings(settings.targets)
    delivery = settings.delivery
    mail = SystemMail.from_settings(settings.mail, delivery.concurrency, delivery.timeout_s)
    # Test alerts are rare: a few threads of this process send them, as the service's own
    # sends would without sending processes.
    users_notifier = AppriseNotifier(policy, min(delivery.concurrency, 4), delivery.timeout_s)
    context = ApiContext.of_service(
        settings,
        store,
        policy,
        await load_links(settings.api, store, sock.getsockname()[1]),
        MailRouting(users_notifier, mail),
        mail,
        lambda: service.kafka,
    )
    api = create_api(context)
    _add_metrics_page(api, service)
    on_each_answer(api, service.answered)
    interpreter.settle()
    gone = asyncio.create_task(service.gone.wait())
    stopping = asyncio.create_task(stop.wait())
    serving = asyncio.create_task(serve(api, sock, stop))
    service.serving()
    try:
        await asyncio.wait([gone, stopping, serving], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await serving
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delivery.timeout_s):
                await context.outbox.drain()  # a sign-up answered just now: its email goes out
    finally:
        for task in (gone, stopping):
            task.cancel()
        service.close()
        users_notifier.close()
        if mail is not None:
            mail.close()
        await store.close()
        log.info("api.process_stopped", pid=os.getpid())


def _add_metrics_page(api: FastAPI, service: _ToService) -> None:
    async def metrics_page(_: Request) -> Response:
        return Response(await service.metrics_page(), media_type=CONTENT_TYPE_LATEST)

    api.add_route(METRICS_PATH, metrics_page, methods=["GET"], include_in_schema=False)
