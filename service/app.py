"""The composition root: the one module that knows every part and wires them from settings.

Kafka batch → match → record in the ledger → (consumer commits) → delivery worker sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import structlog

from config.settings import Settings
from consumers.events import Event
from consumers.kafka import EventConsumer
from service.api import ApiContext, bind, create_api, serve
from service.delivery import AppriseNotifier, DeliveryWorker, Notifier
from service.matching import Matcher
from service.registry import SubscriptionRegistry
from service.store import Match, Store
from service.targets import TargetPolicy
from service.unsubscribe import load_links

log = structlog.get_logger("jobwire.app")


class LiveSubscriptions:
    """The matcher and each subscription's targets, kept in step with the store.

    The CLI writes subscriptions to the store; a running service polls for what
    changed, so a change takes effect within one refresh interval, without a restart.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.matcher = Matcher()
        self.targets: dict[str, list[str]] = {}
        self._seen: datetime | None = None

    async def refresh(self) -> int:
        """Apply what changed since the last refresh; returns how many subscriptions did."""
        before = self._seen
        changes, self._seen = await self.store.subscription_changes(before)
        for subscription, wanted in changes:
            if not wanted:
                self.matcher.remove(subscription.id)
                self.targets.pop(subscription.id, None)
        wanted_now = [sub for sub, wanted in changes if wanted]
        self.matcher.add_many((sub.id, sub.criteria()) for sub in wanted_now)
        self.targets.update((sub.id, list(sub.notify)) for sub in wanted_now)
        # The store returns a small overlap again each time; count only what is new.
        return sum(1 for sub, _ in changes if before is None or sub.updated_at > before)

    async def keep_fresh(self, stop: asyncio.Event, interval_s: float) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
            try:
                changed = await self.refresh()
            except Exception as exc:  # store unreachable: keep matching with what we have
                log.error("subscriptions.refresh_failed", error=str(exc))
                continue
            if changed:
                log.info("subscriptions.refreshed", changed=changed, active=len(self.targets))

    def matches(self, events: Sequence[Event]) -> list[Match]:
        return [
            Match(subscription_id, event, self.targets[subscription_id])
            for event in events
            for subscription_id in self.matcher.match(event)
            if subscription_id in self.targets
        ]


class Service:
    """jobwire as one process: consumers, matcher, ledger and delivery worker."""

    def __init__(self, settings: Settings, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self._notifier = notifier
        self.ready = asyncio.Event()
        # Where the API listens once started (the port may have been chosen by the system).
        self.api_url: str | None = None
        self.live: LiveSubscriptions | None = None
        # How often each part was restarted after a failure; operators see it in the logs too.
        self.restarts: Counter[str] = Counter()

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        # Listen first: a taken port should stop start-up before anything else is opened.
        sock = bind(settings.api.host, settings.api.port) if settings.api.enabled else None
        store = await Store.open(settings.store.url)
        notifier = self._notifier or AppriseNotifier(
            settings.delivery.concurrency, settings.delivery.timeout_s
        )
        live = self.live = LiveSubscriptions(store)
        await live.refresh()
        port = sock.getsockname()[1] if sock else None
        links = await load_links(settings.api, store, port)
        log.info(
            "service.starting", subscriptions=len(live.targets), store=store.engine.dialect.name
        )
        # A link is only worth sending if something serves it: this instance, or another one
        # behind the configured public address.
        served = settings.api.enabled or bool(settings.api.public_url)
        worker = DeliveryWorker(store, notifier, settings.delivery, links.url if served else None)

        async def record(events: Sequence[Event]) -> None:
            matches = live.matches(events)
            recorded = await store.record(matches)
            log.info("match.recorded", events=len(events), matches=len(matches), new=recorded)
            if recorded:
                worker.wake()

        consumer = EventConsumer(settings.kafka, record)
        tasks = [
            asyncio.create_task(
                _supervised("consumer", consumer.run, stop, self.restarts), name="consumer"
            ),
            asyncio.create_task(worker.run(stop), name="delivery"),
            asyncio.create_task(
                live.keep_fresh(stop, settings.store.refresh_interval_s), name="subscriptions"
            ),
        ]
        if sock is not None:
            operator_key = settings.api.operator_key
            api = create_api(
                ApiContext(
                    store=store,
                    registry=SubscriptionRegistry(
                        store, TargetPolicy.from_settings(settings.targets), settings.limits
                    ),
                    links=links,
                    notifier=notifier,
                    operator_key=operator_key.get_secret_value() if operator_key else None,
                    kafka_connected=lambda: consumer.connected,
                )
            )
            tasks.append(asyncio.create_task(serve(api, sock, stop), name="api"))
            self.api_url = f"http://{settings.api.host}:{port}"
            log.info("api.listening", url=self.api_url, docs=f"{self.api_url}/docs")
        self.ready.set()
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if isinstance(notifier, AppriseNotifier):
                notifier.close()
            await store.close()
            log.info("service.stopped")


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
    delay = 1.0
    while not stop.is_set():
        try:
            await run(stop)
            return
        except Exception as exc:
            restarts[name] += 1
            log.error(f"{name}.failed", error=f"{type(exc).__name__}: {exc}", restart_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)


def run_service(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then stop fetching, finish in-flight alerts and close."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stopping, stop, sig)
        await Service(settings).run(stop)

    asyncio.run(main())


def _stopping(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.info("service.stopping", signal=sig.name)
    stop.set()
