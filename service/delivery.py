"""Delivery: pending ledger rows → render → Apprise → sent | retry later | dead.

Like Alertmanager's notification pipeline, each step does one thing: claim due rows with a
lease, render, send off the event loop, and record the outcome. A failing target backs off on
its own schedule; other targets keep flowing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol

import apprise
import structlog

from config.settings import DeliverySettings
from service.render import Message, render
from service.store import ClaimedDelivery, Store, utcnow
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
    result = notifier.notify(title=message.title, body=message.body)
    if not result:
        reasons = [entry.message for entry in result.logs() if entry.level in {"WARNING", "ERROR"}]
        raise DeliveryFailed(_scrub("; ".join(reasons) or "the target refused the alert", target))


def _scrub(text: str, target: str) -> str:
    """Remove any credential of the target URL that a library's message may have quoted."""
    if "@" in target and "://" in target:
        userinfo = target.split("://", 1)[1].split("@", 1)[0]
        for secret in userinfo.split(":")[1:]:
            if secret:
                text = text.replace(secret, "****")
    return text[:1000]


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
        self._in_flight: set[asyncio.Task[None]] = set()

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
                self._in_flight.add(task)
                task.add_done_callback(self._finished)
            if claimed and len(claimed) == free:
                # Full: wait for a slot rather than polling.
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            elif not claimed:
                await _first_of(stop, self._wake, self.settings.poll_interval_s)
        await self.drain()

    async def drain(self) -> None:
        """Let the alerts in flight finish; ones that do not, stay leased and are retried."""
        if self._in_flight:
            log.info("delivery.draining", in_flight=len(self._in_flight))
            await asyncio.wait(self._in_flight, timeout=self.settings.timeout_s)
        log.info("delivery.stopped")

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        try:
            return await self.store.claim(limit, self.settings.lease_s)
        except Exception as exc:  # the store is down: keep the worker alive and try again
            log.error("delivery.claim_failed", error=str(exc))
            return []

    async def _deliver(self, item: ClaimedDelivery) -> None:
        d = item.delivery
        ids = {
            "delivery_id": d.id,
            "subscription_id": d.subscription_id,
            "event_id": d.event_id,
            "target": safe_target(d.target),
            "attempt": d.attempts,
        }
        unsubscribe = self.unsubscribe_url(d.subscription_id) if self.unsubscribe_url else None
        message = render(item.event, item.subscription_name, unsubscribe)
        started = time.perf_counter()
        try:
            try:
                await self.notifier.send(d.target, message)
            except DeliveryFailed as exc:
                await self._failed(item, str(exc), ids)
            except Exception as exc:  # a bug in a plugin must not stop other alerts
                await self._failed(item, _scrub(f"{type(exc).__name__}: {exc}", d.target), ids)
            else:
                await self.store.mark_sent(d.id)
                log.info(
                    "delivery.sent",
                    **ids,
                    send_ms=round((time.perf_counter() - started) * 1000, 1),
                    latency_ms=_ms_since(d.created_at),
                )
        except Exception as exc:
            # Recording the outcome failed (store down): the lease runs out and the row is
            # claimed again, so the alert is not lost; it may be sent twice.
            log.error("delivery.record_failed", **ids, error=str(exc))

    async def _failed(self, item: ClaimedDelivery, error: str, ids: dict[str, object]) -> None:
        d = item.delivery
        if d.attempts >= self.settings.max_attempts:
            await self.store.mark_dead(d.id, error)
            log.error("delivery.dead", **ids, error=error)
            return
        next_at = utcnow() + timedelta(seconds=backoff(d.attempts, self.settings))
        await self.store.mark_retry(d.id, next_at, error)
        await self.store.postpone_target(d.target, next_at)
        log.warning(
            "delivery.retry_scheduled", **ids, next_at=next_at.isoformat() + "Z", error=error
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
