"""The send stage: one message to one target, through Apprise, off the event loop.

Most Apprise plugins block (requests, smtplib), so sends run on a bounded thread pool. Each
thread keeps the plugin it built for a target and reuses it: parsing a URL and building a
plugin cost more than many sends, and a plugin that logs in (Matrix) would otherwise log in
again for every alert. The plugin's own throttle (a pause between two sends of one instance)
is off, since jobwire paces a failing target itself (the breaker).

Every send runs inside the target policy's guard (service/egress.py): each connection the
plugin opens goes only to an address checked at that moment (no DNS rebinding), and no HTTP
redirect is followed. A refusal fails the send with its reason, like any other failure.

What each target receives is `fit(message, plugin)` (fit.py): the format its service shows
(email HTML with a text part, chat Markdown, else text), shortened to the service's limits.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import apprise
from apprise.plugins.matrix import NotifyMatrix

from service.delivery.fit import fit
from service.delivery.render import Message
from service.egress import EgressRefused
from service.redaction import mask, scrub
from service.targets import TargetPolicy
from service.unsubscribe import with_unsubscribe_headers

# Plugins one sending thread keeps (by URL); the least recently used go first.
PLUGINS_PER_THREAD = 256


class DeliveryFailed(Exception):
    """A target did not take the alert; the message is safe to store and show."""


class Notifier(Protocol):
    async def send(self, target: str, message: Message) -> None: ...


class AppriseNotifier:
    """Sends through Apprise on a bounded thread pool, one reused plugin per target and thread,
    inside the target policy's guard."""

    def __init__(self, policy: TargetPolicy, concurrency: int, timeout_s: float) -> None:
        self._policy = policy
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="apprise")
        self._timeout_s = timeout_s
        self._local = threading.local()

    async def send(self, target: str, message: Message) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._pool, self.send_blocking, target, message),
                self._timeout_s,
            )
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {self._timeout_s:g} s") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def send_blocking(self, target: str, message: Message) -> None:
        """Send now, in this thread; raise DeliveryFailed saying why (never a secret)."""
        if message.unsubscribe_url:
            # Email clients offer one-click unsubscribe from these headers (RFC 8058).
            target = with_unsubscribe_headers(target, message.unsubscribe_url)
        try:
            with self._policy.sending():
                sender = self._sender(target)
                plugin = next(iter(sender))
                if isinstance(plugin, NotifyMatrix):
                    # Apprise 2.3.0 never advances a token URL's transaction id
                    # (matrix://TOKEN@…): Synapse takes every later send for a retry of the
                    # first and drops it, while Apprise reports success. A fresh id makes each
                    # send a new event.
                    plugin.transaction_id = secrets.randbits(62)  # an int: Apprise adds 1 to it
                args = fit(message, plugin)
                result = sender.notify(
                    title=args.title, body=args.body, body_format=args.body_format
                )
        except EgressRefused as exc:
            raise DeliveryFailed(str(exc)) from None
        if not result:
            reasons = [e.message for e in result.logs() if e.level in {"WARNING", "ERROR"}]
            raise DeliveryFailed(
                scrub("; ".join(reasons) or "the target refused the alert", target)
            )

    def _sender(self, target: str) -> apprise.Apprise:
        """This thread's Apprise for `target`, made once and kept (least recently used go)."""
        senders: OrderedDict[str, apprise.Apprise] | None = getattr(self._local, "senders", None)
        if senders is None:
            senders = self._local.senders = OrderedDict()
        sender = senders.get(target)
        if sender is not None:
            senders.move_to_end(target)
            return sender
        sender = apprise.Apprise()
        if not sender.add(target):
            raise DeliveryFailed(f"Apprise cannot use this target: {mask(target)}")
        for plugin in sender:
            plugin.request_rate_per_sec = 0  # no pause between two alerts to one target
            # fit() makes every message fit whole; one that still did not is better refused
            # (a failed delivery, recorded) than cut mid-word or split into parts.
            plugin.overflow_mode = apprise.OverflowMode.UPSTREAM
        senders[target] = sender
        if len(senders) > PLUGINS_PER_THREAD:
            senders.popitem(last=False)
        return sender
