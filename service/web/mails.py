"""The emails the web page makes jobwire send, and sending them after the answer.

Sign-up and "email me a link" answer the same page whoever asks, at once, and send the email
afterwards (`Outbox.send_later`): whether an address has an account decides what is sent, and
a page that waited for that (a lookup, an SMTP conversation) would tell by its timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

from service.delivery import Message

log = structlog.get_logger("jobwire.web.mail")


def confirm_message(link: str, hours: float) -> Message:
    """The confirmation email. It carries nothing the sign-up typed: a form that emails any
    address must not carry a stranger's words to it. The page the link opens shows them."""
    body = (
        "Someone, hopefully you, asked jobwire for job or news alerts at this address.\n\n"
        f"To see what they are about and start them, open this link within {_hours(hours)}:\n\n"
        f"{link}\n\n"
        "If it was not you, ignore this email: nothing will be sent to you."
    )
    return Message("Confirm your jobwire alert", body)


def sign_in_message(link: str, minutes: float) -> Message:
    body = (
        "Open this link to manage your jobwire alerts. It works once, within "
        f"{minutes:g} minutes:\n\n{link}\n\n"
        "If you did not ask for it, ignore this email: your alerts stay as they are."
    )
    return Message("Your jobwire sign-in link", body)


def no_account_message(sign_up: str) -> Message:
    body = (
        "Someone, hopefully you, asked for a link to manage jobwire alerts at this address, "
        "but it has none yet.\n\n"
        f"Set one up here: {sign_up}\n\n"
        "If it was not you, ignore this email."
    )
    return Message("Your jobwire sign-in link", body)


def _hours(hours: float) -> str:
    return f"{hours:g} hours" if hours != 1 else "an hour"


class Outbox:
    """Emails being sent in the background; failures are logged (never the address's mail
    URL), and `drain` waits for those in flight (a clean stop, tests)."""

    def __init__(self) -> None:
        self._sending: set[asyncio.Task[None]] = set()

    def send_later(self, what: str, sending: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._logged(what, sending))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def drain(self) -> None:
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    @staticmethod
    async def _logged(what: str, sending: Coroutine[Any, Any, None]) -> None:
        try:
            await sending
        except Exception as exc:
            # The notifier's errors are scrubbed of the mail URL's secrets already.
            log.error("web.mail_failed", mail=what, error=str(exc))
        else:
            log.info("web.mail_sent", mail=what)
