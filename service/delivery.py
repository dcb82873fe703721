"""Delivery: pending ledger rows → render → Apprise → sent | retry later | dead.

Like Alertmanager's notification pipeline, each step does one thing: claim due rows with a
lease, render, send off the event loop, and record the outcome. A failing target backs off on
its own schedule; other targets keep flowing.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol
from urllib.parse import unquote

import apprise
import structlog

from config.settings import DeliverySettings
from service.render import Message, render
from service.store import ClaimedDelivery, Store, explain, utcnow
from service.subscriptions import masked

log = structlog.get_logger("jobwire.delivery")


class DeliveryFailed(Exception):
    """A target did not take the alert; the message is safe to store and show."""


class Notifier(Protocol):
    async def send(self, target: str, message: Message) -> None: ...


class AppriseNotifier:
    """Sends through Apprise on a bounded thread pool, since most Apprise targets block."""

    def __init__(self, concurrency: int, timeout_s: float) -> None:
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="apprise")
        self._timeout_s = timeout_s

    async def send(self, target: str, message: Message) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._pool, _send_blocking, target, message),
                self._timeout_s,
            )
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {self._timeout_s:g} s") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _send_blocking(target: str, message: Message) -> None:
    # A fresh Apprise object per alert: a plugin instance throttles its own repeated sends
    # (email waits seconds between two), which would serialise every alert to one target.
    notifier = apprise.Apprise()
    if not notifier.add(target):
        raise DeliveryFailed(f"Apprise cannot use this target: {safe_target(target)}")
    # TEXT: our bodies are plain text; Apprise would otherwise read them as HTML and an email's
    # text part would lose its line breaks.
    result = notifier.notify(
        title=message.title, body=message.body, body_format=apprise.NotifyFormat.TEXT
    )
    if not result:
        reasons = [entry.message for entry in result.logs() if entry.level in {"WARNING", "ERROR"}]
        raise DeliveryFailed(scrub("; ".join(reasons) or "the target refused the alert", target))


def scrub(text: str, target: str) -> str:
    """Remove every secret of the target URL that a library's message may have quoted.

    What the URL has and its privacy form lacks is secret: passwords, and the tokens of chat
    webhooks that sit in the path (slack://T/B/C).
    """
    shown = set(_URL_PARTS.split(unquote(safe_target(target))))
    secrets = {part for part in _URL_PARTS.split(target) if len(part) >= 4 and part not in shown}
    if "@" in target and "://" in target:
        userinfo = target.split("://", 1)[1].split("@", 1)[0]
        secrets.update(part for part in userinfo.split(":")[1:] if part)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "****")
    return text[:1000]


_URL_PARTS = re.compile(r"[/:@?&=#,\s]+")


@lru_cache(maxsize=4096)
def safe_target(target: str) -> str:
    """The masked form of a target, cached because every log line of a delivery shows it."""
    return masked(target)


def backoff(
    attempt: int, settings: DeliverySettings, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before the next attempt: exponential, capped, with jitter so targets recover
    without a thundering herd (delay is between half and all of the exponential step)."""
    step = min(settings.backoff_cap_s, settings.backoff_base_s * 2.0 ** (attempt - 1))
    return step / 2 + rand() * step / 2


@dataclass
class TargetHold:
    """A target that is failing: its alerts wait while one of them probes it."""

    failures: int = 0
    until: datetime = field(default_factory=utcnow)
    probing: bool = False


class DeliveryWorker:
    """Claims due alerts from the ledger and sends them, a bounded number at a time."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        settings: DeliverySettings,
        unsubscribe_url: Callable[[str], str] | None = None,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.settings = settings
        self.unsubscribe_url = unsubscribe_url
        self._wake = asyncio.Event()
        self._in_flight: dict[asyncio.Task[None], int] = {}
        # Like a circuit breaker per target: after a failure only one alert probes the target
        # until it answers again, so a target that is down is not hammered by its backlog.
        self._holds: dict[str, TargetHold] = {}

    def wake(self) -> None:
        """New alerts were recorded: look for them now instead of at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        log.info("delivery.started", concurrency=self.settings.concurrency)
        while not stop.is_set():
            self._wake.clear()
            free = self.settings.concurrency - len(self._in_flight)
            claimed = await self._claim(free) if free > 0 else []
            for item in claimed:
                task = asyncio.create_task(self._deliver(item))
                self._in_flight[task] = item.delivery.id
                task.add_done_callback(self._finished)
            if claimed and len(claimed) == free:
                # Full: wait for a slot rather than polling.
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            elif not claimed:
                await _first_of(stop, self._wake, self.settings.poll_interval_s)
        await self.drain()

    async def drain(self) -> None:
        """Let the alerts in flight finish; give the ones that do not back to the ledger."""
        if self._in_flight:
            log.info("delivery.draining", in_flight=len(self._in_flight))
            _, late = await asyncio.wait(self._in_flight, timeout=self.settings.timeout_s)
            released = [self._in_flight[task] for task in late]
            for task in late:
                task.cancel()
            if released:
                await self.store.ledger.release(released)
                log.warning("delivery.released", delivery_ids=released)
        log.info("delivery.stopped")

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._wake.set()

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        try:
            return await self.store.ledger.claim(limit, self.settings.lease_s)
        except Exception as exc:  # the store is down: keep the worker alive and try again
            log.error("delivery.claim_failed", error=explain(exc))
            return []

    async def _deliver(self, item: ClaimedDelivery) -> None:
        d = item.delivery
        ids = {
            "delivery_id": d.id,
            "subscription_id": d.subscription_id,
            "event_id": d.event_id,
            "target": safe_target(d.target),
        }
        try:
            hold = self._holds.get(d.target)
            if hold is not None and (hold.probing or hold.until > utcnow()):
                await self.store.ledger.defer(d.id, hold.until)
                return
            if hold is not None:
                hold.probing = True
            await self._send(item, ids, probe=hold is not None)
        except Exception as exc:
            # Recording the outcome failed (store down): the lease runs out and the row is
            # claimed again, so the alert is not lost; it may be sent twice.
            log.error("delivery.record_failed", **ids, error=explain(exc))
        finally:
            hold = self._holds.get(d.target)
            if hold is not None:
                hold.probing = False

    async def _send(self, item: ClaimedDelivery, ids: dict[str, object], probe: bool) -> None:
        d = item.delivery
        unsubscribe = self.unsubscribe_url(d.subscription_id) if self.unsubscribe_url else None
        message = render(item.event, item.subscription_name, unsubscribe)
        started = time.perf_counter()
        try:
            await self.notifier.send(d.target, message)
        except DeliveryFailed as exc:
            await self._failed(item, str(exc), ids, probe)
        except Exception as exc:  # a bug in a plugin must not stop other alerts
            error = scrub(f"{type(exc).__name__}: {exc}", d.target)
            await self._failed(item, error, ids, probe)
        else:
            self._holds.pop(d.target, None)
            await self.store.ledger.mark_sent(d.id)
            log.info(
                "delivery.sent",
                **ids,
                attempt=d.attempts,
                send_ms=round((time.perf_counter() - started) * 1000, 1),
                latency_ms=_ms_since(d.created_at),
            )

    async def _failed(
        self, item: ClaimedDelivery, error: str, ids: dict[str, object], probe: bool
    ) -> None:
        d = item.delivery
        hold = self._holds.get(d.target)
        if hold is None:
            hold = self._holds[d.target] = TargetHold(failures=1)
        elif probe:
            hold.failures += 1
        # else: a send that was already in flight when the target first failed; the hold
        # counts that outage once, not once per alert caught in it.
        if d.attempts >= self.settings.max_attempts or hold.failures >= self.settings.max_attempts:
            # The target failed every attempt allowed: its waiting alerts would only fail too.
            await self.store.ledger.mark_dead(d.id, error)
            others = await self.store.ledger.mark_target_dead(d.target, error)
            # The hold stays: a later alert probes the target once per longest backoff, and
            # dies at once if it still fails, until one gets through.
            hold.until = utcnow() + timedelta(seconds=self.settings.backoff_cap_s)
            log.error("delivery.dead", **ids, attempt=d.attempts, error=error, also_dead=others)
            return
        hold.until = utcnow() + timedelta(seconds=backoff(hold.failures, self.settings))
        await self.store.ledger.mark_retry(d.id, hold.until, error)
        await self.store.ledger.postpone_target(d.target, hold.until)
        log.warning(
            "delivery.retry_scheduled",
            **ids,
            attempt=d.attempts,
            next_at=hold.until.isoformat() + "Z",
            error=error,
        )


def _ms_since(moment: datetime) -> float:
    return round((utcnow() - moment).total_seconds() * 1000, 1)


async def _first_of(stop: asyncio.Event, wake: asyncio.Event, wait_s: float) -> None:
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
