"""The send stage: one message to one target, through Apprise, off the event loop.

Most Apprise plugins block (requests, smtplib), so sends run on a bounded thread pool. Each
thread keeps the plugin it built for a target and reuses it: parsing a URL and building a
plugin cost more than many sends, and a plugin that logs in (Matrix) would otherwise log in
again for every alert. The plugin's own throttle (a pause between two sends of one instance)
is off, since jobwire paces a failing target itself (the breaker), and redirects are never
followed, so a webhook host cannot bounce an alert to an address the target policy refused.

What each target receives is `fit(message, plugin)` (fit.py): the format its service shows
(email HTML with a text part, chat Markdown, else text), shortened to the service's limits.
Emails also carry the unsubscribe link in `List-Unsubscribe` headers.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Protocol
from urllib.parse import quote, unquote

import apprise
from apprise.plugins.matrix import NotifyMatrix

from service.delivery.fit import fit
from service.delivery.render import Message
from service.subscriptions import masked

# Plugins one sending thread keeps (by URL); the least recently used go first.
PLUGINS_PER_THREAD = 256


class DeliveryFailed(Exception):
    """A target did not take the alert; the message is safe to store and show."""


class Notifier(Protocol):
    async def send(self, target: str, message: Message) -> None: ...


class AppriseNotifier:
    """Sends through Apprise on a bounded thread pool, one reused plugin per target and thread."""

    def __init__(self, concurrency: int, timeout_s: float) -> None:
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="apprise")
        self._timeout_s = timeout_s
        self._local = threading.local()

    async def send(self, target: str, message: Message) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._pool, self._send_blocking, target, message),
                self._timeout_s,
            )
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {self._timeout_s:g} s") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _sender(self, url: str, target: str) -> apprise.Apprise:
        """This thread's Apprise for `url` (the `target` as sent), made once and kept (least
        recently used go)."""
        senders: OrderedDict[str, apprise.Apprise] | None = getattr(self._local, "senders", None)
        if senders is None:
            senders = self._local.senders = OrderedDict()
        sender = senders.get(url)
        if sender is not None:
            senders.move_to_end(url)
            return sender
        sender = apprise.Apprise(asset=_ASSET)
        if not sender.add(url):
            raise DeliveryFailed(f"Apprise cannot use this target: {safe_target(target)}")
        for plugin in sender:
            plugin.request_rate_per_sec = 0  # no pause between two alerts to one target
            plugin.redirects = False  # whatever the URL says (?redirect=yes)
            # fit() makes every message fit whole; one that still did not is better refused
            # (a failed delivery, recorded) than cut mid-word or split into parts.
            plugin.overflow_mode = apprise.OverflowMode.UPSTREAM
        senders[url] = sender
        if len(senders) > PLUGINS_PER_THREAD:
            senders.popitem(last=False)
        return sender

    def _send_blocking(self, target: str, message: Message) -> None:
        url = target
        if message.unsubscribe_url:
            url = with_unsubscribe_headers(target, message.unsubscribe_url)
        sender = self._sender(url, target)
        plugin = next(iter(sender))
        if isinstance(plugin, NotifyMatrix):
            # Apprise 2.3.0 never advances the transaction id of a token URL (matrix://TOKEN@…):
            # Synapse takes every later send for a retry of the first and drops it, while
            # Apprise reports success. A fresh id makes each send a new event.
            plugin.transaction_id = secrets.randbits(62)  # an int: Apprise adds 1 to it
        args = fit(message, plugin)
        result = sender.notify(title=args.title, body=args.body, body_format=args.body_format)
        if not result:
            reasons = [
                entry.message for entry in result.logs() if entry.level in {"WARNING", "ERROR"}
            ]
            raise DeliveryFailed(
                scrub("; ".join(reasons) or "the target refused the alert", target)
            )


# Schemes of Apprise's email plugin, which turns `+Name=value` URL parameters into headers.
EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
_UNSUBSCRIBE_HEADERS = ("+list-unsubscribe", "+list-unsubscribe-post")


def with_unsubscribe_headers(url: str, link: str) -> str:
    """`url` with `List-Unsubscribe: <link>` and `List-Unsubscribe-Post: List-Unsubscribe=
    One-Click` (RFC 2369, RFC 8058) when it is an email target; other targets unchanged.

    The same as the security branch's `service.unsubscribe.with_unsubscribe_headers`, which
    this gives way to once both are merged. Headers of the same name the user set are
    replaced, so a target cannot advertise another unsubscribe address.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in EMAIL_SCHEMES:
        return url
    base, _, query = url.partition("?")
    kept = [
        pair
        for pair in query.split("&")
        if pair and unquote(pair.partition("=")[0]).lower() not in _UNSUBSCRIBE_HEADERS
    ]
    kept.append("%2BList-Unsubscribe=" + quote(f"<{link}>", safe=""))
    kept.append("%2BList-Unsubscribe-Post=" + quote("List-Unsubscribe=One-Click", safe=""))
    return f"{base}?{'&'.join(kept)}"


# One asset for every plugin: redirects off (the plugins read it as their default).
_ASSET = apprise.AppriseAsset(http_redirects=False)


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
