"""The composition root: the one module that knows every part and wires them from settings.

Kafka batch → match → record in the ledger → (consumer commits) → delivery worker sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import structlog
import uvloop

from config.settings import Settings
from consumers.kafka import EventConsumer
from consumers.pacing import Backoff, wait_or_stop
from service import interpreter
from service.delivery import AppriseNotifier, DeliveryWorker, Notifier
from service.delivery.observer import Observers
from service.delivery.render import Renderer
from service.delivery.send.senders import SenderPool
from service.operations.health import StoreWatch
from service.operations.meta_alerts import MetaAlerts
from service.operations.metrics import Metrics
from service.operations.metrics_endpoint import bind_metrics, instrument, metrics_only_app
from service.pipeline import LiveSubscriptions, Pipeline
from service.store import Store, describe_failure
from service.store.retention import Retention
from service.system_mail import MailRouting, SystemMail
from service.targets import TargetPolicy
from service.unsubscribe import load_links
from service.web import ApiContext, bind, create_api, serve
from service.web.processes import ApiProcesses

log = structlog.get_logger("jobwire.app")


class Service:
    """jobwire as one process: consumers, matcher, ledger and delivery worker."""

    def __init__(self, settings: Settings, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self._notifier = notifier
        self.ready = asyncio.Event()
        # Where the API listens once started (the port may have been chosen by the system).
        self.api_url: str | None = None
        self.live: LiveSubscriptions | None = None
        # The API processes beside this one (JOBWIRE_API__PROCESSES above 1).
        self.api_processes: ApiProcesses | None = None
        # How often each part was restarted after a failure; operators see it in the logs too.
        self.restarts: Counter[str] = Counter()
        self.metrics = Metrics()
        self.metrics.count_restarts(self.restarts)
        # Where /metrics is served on a port of its own (with the API off).
        self.metrics_url: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        # The operator's templates render every sample first: a broken one stops start-up
        # here, with its file and line, never at send time.
        renderer = Renderer.from_settings(settings.templates)
        # Listen first: a taken port should stop start-up before anything else is opened.
        sock = (
            bind(settings.api.host, settings.api.port, shared=settings.api.processes > 1)
            if settings.api.enabled
            else None
        )
        metrics, metrics_sock = self.metrics, None
        if sock is None:
            metrics_sock = bind_metrics(settings.metrics.host, settings.metrics.port)
        store = await Store.open(
            settings.store.url, settings.store.auto_migrate, settings.store.keys()
        )
        policy = TargetPolicy.from_settings(settings.targets)
        users_notifier = self._notifier or await _notifier(settings, policy)
        # jobwire's own email (web sign-ups, sign-in links, and the alerts of people who signed
        # up on the page) goes through the operator's JOBWIRE_MAIL__URL, outside the users'
        # target policy; every other target through `users_notifier` (service/system_mail.py).
        mail = SystemMail.from_settings(
            settings.mail, settings.delivery.concurrency, settings.delivery.timeout_s
        )
        notifier = MailRouting(users_notifier, mail)
        live = self.live = LiveSubscriptions(store, metrics)
        await live.refresh()
        port = sock.getsockname()[1] if sock else None
        links = await load_links(settings.api, store, port)
        log.info(
            "service.starting",
            subscriptions=len(live.targets),
            store=store.engine.dialect.name,
            # How soon the loop lets the store's thread run (service/interpreter.py).
            switch_interval_ms=round(sys.getswitchinterval() * 1e3, 3),
        )
        if not store.sealer.enabled and await store.secrets.plain_count():
            log.warning(
                "store.unencrypted",
                hint="targets' passwords and tokens are stored in plain text: set "
                "JOBWIRE_STORE__ENCRYPTION_KEYS (`jobwire keys new` makes a key)",
            )
        # A link is only worth sending if something serves it: this instance, or another one
        # behind the configured public address.
        served = settings.api.enabled or bool(settings.api.public_url)
        operator = settings.operator
        # The operator's own URLs are not users' targets: any host the operator names.
        operator_notifier = self._notifier or AppriseNotifier(
            TargetPolicy((), allow_private_hosts=True), 1, settings.delivery.timeout_s
        )
        meta_alerts = MetaAlerts(
            store.target_state,
            notifier,
            metrics,
            operator.notify.get_secret_value() if operator.notify else None,
            owner_mail=mail is not None,
            operator_notifier=operator_notifier,
        )
        worker = DeliveryWorker(
            store,
            notifier,
            settings.delivery,
            links.url if served else None,
            observer=Observers(metrics, meta_alerts),
            renderer=renderer,
            manage_url=links.manage_url if served and settings.web.enabled else None,
        )
        metrics.watch_sends(lambda: worker.sends_in_flight, lambda: worker.sends_held_back)

        consumer = EventConsumer(
            settings.kafka, Pipeline(live, store, worker.wake, metrics), observer=metrics
        )
        if sock is not None and settings.api.processes > 1:
            # Serving before this process says it listens, and before anything runs here that
            # start-up's failure would leave behind: a client that connects as soon as the
            # service listens (a load balancer's kept connections) is spread over all of them.
            self.api_processes = ApiProcesses(
                settings, sock.getsockname()[1], metrics, lambda: consumer.connected
            )
            await self.api_processes.start()
        tasks = [
            asyncio.create_task(
                _supervised("consumer", consumer.run, stop, self.restarts), name="consumer"
            ),
            asyncio.create_task(worker.run(stop), name="delivery"),
            asyncio.create_task(
                live.keep_fresh(stop, settings.store.refresh_interval_s), name="subscriptions"
            ),
            asyncio.create_task(
                Retention(store.engine, settings.retention).run(stop), name="retention"
            ),
            asyncio.create_task(
                StoreWatch(
                    store, metrics, ledger_interval_s=settings.metrics.ledger_interval_s
                ).run(stop),
                name="store.watch",
            ),
            asyncio.create_task(meta_alerts.run(stop), name="meta_alerts"),
        ]
        # Test alerts check every connection at send time (service/egress.py).
        web_context: ApiContext | None = None
        if sock is not None:
            web_context = ApiContext.of_service(
                settings, store, policy, links, notifier, mail, lambda: consumer.connected
            )
            api = create_api(web_context)
            instrument(api, metrics)
            if self.api_processes is not None:
                tasks.append(
                    asyncio.create_task(self.api_processes.run(stop), name="api.processes")
                )
            tasks.append(asyncio.create_task(serve(api, sock, stop), name="api"))
            self.api_url = f"http://{settings.api.host}:{port}"
            log.info(
                "api.listening",
                url=self.api_url,
                docs=f"{self.api_url}/docs",
                page=f"{links.base_url}/" if settings.web.enabled else None,
                processes=settings.api.processes,
            )
        if metrics_sock is not None:
            app = metrics_only_app(metrics)
            tasks.append(asyncio.create_task(serve(app, metrics_sock, stop), name="metrics"))
            self.metrics_url = f"http://{settings.metrics.host}:{metrics_sock.getsockname()[1]}"
            log.info("metrics.listening", url=f"{self.metrics_url}/metrics")
        self.ready.set()
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if web_context is not None:
                # A sign-up answered "check your inbox" just now: its email still goes out.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(settings.delivery.timeout_s):
                        await web_context.outbox.drain()
            for sender in (users_notifier, operator_notifier):
                if isinstance(sender, AppriseNotifier | SenderPool):
                    sender.close()
            if mail is not None:
                mail.close()
            await store.close()
            log.info("service.stopped")


async def _notifier(settings: Settings, policy: TargetPolicy) -> Notifier:
    """Where sends run: child processes (JOBWIRE_DELIVERY__PROCESSES), or this process."""
    delivery = settings.delivery
    if delivery.processes == 0:
        return AppriseNotifier(policy, delivery.concurrency, delivery.timeout_s)
    threads = -(-delivery.concurrency // delivery.processes)  # ceiling
    pool = SenderPool(
        settings.targets, settings.templates, delivery.processes, threads, delivery.timeout_s
    )
    await pool.start()
    return pool


async def _supervised(
    name: str,
    run: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    restarts: Counter[str],
) -> None:
    """Restart a part that failed (Kafka or the store went away) with a growing pause.

    A restarted consumer rejoins the group and re-reads from the last commit, which the
    ledger makes harmless; the service as a whole keeps running.
    """
    pause = Backoff()
    while not stop.is_set():
        try:
            await run(stop)
            return
        except Exception as exc:
            restarts[name] += 1
            log.error(f"{name}.failed", error=describe_failure(exc), restart_in_s=pause.delay_s)
            await wait_or_stop(stop, pause.delay_s)
            pause.grow()


def run_service(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then stop fetching, finish in-flight alerts and close."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stopping, stop, sig)
        service = Service(settings)
        settling = asyncio.create_task(_settle_when_ready(service))
        try:
            await service.run(stop)
        finally:
            settling.cancel()

    interpreter.hand_over_promptly()  # SQLite's thread waits less for the loop
    # uvloop: the event loop in C. Every stage here is many small awaits (Kafka, the store's
    # thread, HTTP), and the loop's own work was a tenth of the consumer's time.
    uvloop.run(main())


async def _settle_when_ready(service: Service) -> None:
    """Start-up's objects set aside once it is done (service/interpreter.py). Only here, in the
    process `jobwire run` owns: a test or an embedding program keeps its collector as is."""
    await service.ready.wait()
    started = time.perf_counter()
    set_aside = interpreter.settle()
    log.info("heap.settled", objects=set_aside, ms=round((time.perf_counter() - started) * 1e3))


def _stopping(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.info("service.stopping", signal=sig.name)
    stop.set()
