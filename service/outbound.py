"""One message to one target through Apprise, inside the send-time guard of the target policy.

Every send jobwire makes should come through `send_blocking`: the guard (service/egress.py)
then checks each connection the plugin opens and refuses redirects, and a refusal is reported
as a failure with its reason, never dropped. `GuardedNotifier` runs it off the event loop on a
bounded pool, as the API's test alerts do (and as delivery can).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import apprise

from service.egress import EgressRefused
from service.redaction import mask, scrub
from service.render import Message
from service.targets import TargetPolicy


class SendFailed(Exception):
    """The target did not take the message; the text is safe to store and show."""


def send_blocking(target: str, message: Message, policy: TargetPolicy) -> None:
    """Send `message` to `target` now (blocking); raise SendFailed or EgressRefused saying why.

    A fresh Apprise object per message: a plugin instance throttles its own repeated sends
    (email waits seconds between two), which would serialise every alert to one target.
    """
    with policy.sending():
        notifier = apprise.Apprise()
        if not notifier.add(target):
            raise SendFailed(f"Apprise cannot use this target: {mask(target)}")
        # TEXT: our bodies are plain text; Apprise would otherwise read them as HTML and an
        # email's text part would lose its line breaks.
        result = notifier.notify(
            title=message.title, body=message.body, body_format=apprise.NotifyFormat.TEXT
        )
        if not result:
            reasons = [e.message for e in result.logs() if e.level in {"WARNING", "ERROR"}]
            raise SendFailed(scrub("; ".join(reasons) or "the target refused the alert", target))


class GuardedNotifier:
    """Sends with `send_blocking` on a bounded thread pool, since most Apprise targets block."""

    def __init__(self, policy: TargetPolicy, concurrency: int, timeout_s: float) -> None:
        self._policy = policy
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="apprise")
        self._timeout_s = timeout_s

    async def send(self, target: str, message: Message) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._pool, send_blocking, target, message, self._policy),
                self._timeout_s,
            )
        except TimeoutError:
            raise SendFailed(f"no answer within {self._timeout_s:g} s") from None
        except EgressRefused as exc:
            raise SendFailed(str(exc)) from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
