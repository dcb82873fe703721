"""The send stage: one message to one target, through Apprise, off the event loop.

Most Apprise plugins block (requests, smtplib), so sends run on a bounded thread pool. The
plugin built for a target is kept and reused: parsing a URL, building a plugin and opening a
connection cost twice a warm send's CPU (2.0 against 0.7 ms for `json://`), and a plugin that
logs in (Matrix) would otherwise log in again for every alert. Next to the plugin is kept an
HTTP session, so a webhook's connection stays alive between alerts (keepalive.py). The plugin's
own throttle (a pause between two sends of one instance) is off, since jobwire paces a failing
target itself (the breaker).

What is kept belongs to the process, not to a thread: a send takes the target's idle plugin,
whichever thread it runs on, and gives it back when done, so one plugin is never in two sends
at once (plugins keep per-send state) and a target has as many as it has sends at the same
moment, usually one. Kept per thread instead, each target was cold once on every thread, and
a process kept a quarter as many targets warm.

The plugin is called directly (`plugin.notify`, which Apprise supports for one service): the
`Apprise` object around it adds tags, retries, deadlines and a result report built for many
services at once, which cost as much CPU as the send itself. jobwire has its own of each (one
target per send, the breaker and retries, the send timeout); the plugin's warnings, which say
why a send failed, are collected by `_Reasons` for the one send they belong to.

Every send runs inside the target policy's guard (service/egress.py): each connection the
plugin opens goes only to an address checked at that moment (no DNS rebinding), and no HTTP
redirect is followed. A refusal fails the send with its reason, like any other failure.

What each target receives is `fit(message, plugin)` (fit.py): the format its service shows
(email HTML with a text part, chat Markdown, else text), shortened to the service's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

import apprise
import requests
from apprise.emojis import apply_emojis
from apprise.plugins.base import NotifyBase
from apprise.plugins.matrix import NotifyMatrix

from service.delivery.render import Message
from service.delivery.send import keepalive, smtp_tls
from service.delivery.send.fit import fit
from service.egress import EgressRefused
from service.logs import OwnContextHandler
from service.redaction import mask, scrub
from service.targets import TargetPolicy
from service.unsubscribe import with_unsubscribe_headers

# Plugins a sending process keeps, each with its session and connection (a file descriptor);
# the least recently used target's go first.
KEPT_PLUGINS = 1024

# Email: one TLS context for every message instead of one built per message (smtp_tls.py).
smtp_tls.install()
# Webhooks: connections kept alive between alerts to one target (keepalive.py).
keepalive.install()


class _Reasons(OwnContextHandler):
    """Keeps the warnings and errors Apprise logs during one send, for that send only.

    Apprise logs why a send failed ("... responded with 500", "connection refused") and
    returns False. The lines of the send running in this context are kept (a ContextVar, so
    concurrent sends on other threads keep theirs); the rest are not this handler's.
    """

    _current: ContextVar[list[str] | None] = ContextVar("jobwire_send_reasons", default=None)

    def emit(self, record: logging.LogRecord) -> None:
        kept = self._current.get()
        if kept is not None and record.levelno >= logging.WARNING:
            kept.append(record.getMessage())

    @classmethod
    @contextlib.contextmanager
    def collect(cls) -> Iterator[list[str]]:
        kept: list[str] = []
        token = cls._current.set(kept)
        try:
            yield kept
        finally:
            cls._current.reset(token)


logging.getLogger("apprise").addHandler(_Reasons(logging.WARNING))


# Apprise's emoji table (":smile:" to its character), for a URL that asks for it (emojis=yes).
_emojis: Callable[[str], str] = apply_emojis


@dataclass(slots=True)
class _Kept:
    """What the process keeps for one target, lent to one send at a time: its plugin and its
    HTTP connections."""

    plugin: NotifyBase
    session: requests.Session


class DeliveryFailed(Exception):
    """A target did not take the alert; the message is safe to store and show."""


class Notifier(Protocol):
    async def send(self, target: str, message: Message) -> None: ...


class AppriseNotifier:
    """Sends through Apprise on a bounded thread pool, with the plugin this process keeps for
    each target, inside the target policy's guard."""

    def __init__(self, policy: TargetPolicy, concurrency: int, timeout_s: float) -> None:
        self._policy = policy
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="apprise")
        self._timeout_s = timeout_s
        self._kept = _KeptPlugins(KEPT_PLUGINS)

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
            with (
                self._policy.sending(),
                _Reasons.collect() as reasons,
                self._kept.lent(target) as kept,
            ):
                plugin = kept.plugin
                if isinstance(plugin, NotifyMatrix):
                    # Apprise 2.3.0 never advances a token URL's transaction id
                    # (matrix://TOKEN@…): Synapse takes every later send for a retry of the
                    # first and drops it, while Apprise reports success. A fresh id makes each
                    # send a new event.
                    plugin.transaction_id = secrets.randbits(62)  # an int: Apprise adds 1 to it
                args = fit(message, plugin)
                title, body = args.title, args.body
                if plugin.interpret_emojis:  # the URL asked for :emoji: codes to be drawn
                    title, body = _emojis(title), _emojis(body)
                with keepalive.using(kept.session):
                    sent = plugin.notify(title=title, body=body, body_format=args.body_format)
        except EgressRefused as exc:
            raise DeliveryFailed(str(exc)) from None
        if not sent:
            raise DeliveryFailed(
                scrub("; ".join(reasons) or "the target refused the alert", target)
            )


class _KeptPlugins:
    """The plugins and sessions this process keeps, per target, for any thread to borrow."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._count = 0  # kept, idle or lent
        self._idle: OrderedDict[str, list[_Kept]] = OrderedDict()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lent(self, target: str) -> Iterator[_Kept]:
        """An idle plugin for `target` (made if none is idle), this send's alone until it ends."""
        with self._lock:
            idle = self._idle.get(target)
            kept = idle.pop() if idle else None
        if kept is None:
            kept = _made(target)  # outside the lock: other sends need not wait for it
            with self._lock:
                self._count += 1
        try:
            yield kept
        finally:
            self._give_back(target, kept)

    def _give_back(self, target: str, kept: _Kept) -> None:
        gone: list[_Kept] = []
        with self._lock:
            idle = self._idle.get(target)
            if idle is None:
                idle = self._idle[target] = []
            else:
                self._idle.move_to_end(target)
            idle.append(kept)
            while self._count > self._limit:
                _, oldest = self._idle.popitem(last=False)
                self._count -= len(oldest)
                gone.extend(oldest)
        for old in gone:
            old.session.close()


def _made(target: str) -> _Kept:
    plugin = apprise.Apprise.instantiate(target, suppress_exceptions=True)
    if not isinstance(plugin, NotifyBase):
        raise DeliveryFailed(f"Apprise cannot use this target: {mask(target)}")
    plugin.request_rate_per_sec = 0  # no pause between two alerts to one target
    # fit() makes every message fit whole; one that still did not is better refused
    # (a failed delivery, recorded) than cut mid-word or split into parts.
    plugin.overflow_mode = apprise.OverflowMode.UPSTREAM
    # Apprise works out a plugin's formats from its declaration at each call, four times a
    # send (with fit()'s looks: 8% of a json:// send's CPU); they are fixed once it is made.
    formats = plugin._formats()
    plugin._formats = lambda: formats  # type: ignore[method-assign]
    return _Kept(plugin, keepalive.new_session())
