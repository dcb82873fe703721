"""jobwire's own email: sign-up confirmations, sign-in links, and the alerts of people who
signed up on the web page, all sent through the operator's Apprise URL (JOBWIRE_MAIL__URL).

The alerts of people who signed up on the page are stored with a target that names their
address only (service/own_mail.py says why and how). `MailRouting` (the notifier the delivery
worker and test alerts use) sends such targets through the operator's URL, as it is set now,
with `to=` the address.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

import structlog

from config.settings import MailSettings
from service.delivery import AppriseNotifier, DeliveryFailed, Message, Notifier
from service.own_mail import own_mail_address
from service.targets import TargetPolicy

log = structlog.get_logger("jobwire.mail")


def with_recipient(url: str, address: str) -> str:
    """`url` sending to `address` only: any `to=` it had is replaced."""
    base, _, query = url.strip().partition("?")
    kept = [pair for pair in query.split("&") if pair and unquote(pair.partition("=")[0]) != "to"]
    kept.append("to=" + quote(address, safe="@"))
    return f"{base}?{'&'.join(kept)}"


class SystemMail:
    """Sends email to one address through the operator's URL, with a notifier of its own: the
    operator chose that server, so the users' target policy does not apply to it."""

    def __init__(self, url: str, notifier: Notifier) -> None:
        self._url = url
        self._notifier = notifier

    @classmethod
    def from_settings(
        cls, settings: MailSettings, concurrency: int, timeout_s: float
    ) -> SystemMail | None:
        """jobwire's mail when JOBWIRE_MAIL__URL is set, sending on a pool of its own of
        `concurrency` threads (the alerts of everyone who signed up on the page go through it;
        close it with `close`); None when it is not."""
        if settings.url is None:
            return None
        trusted = TargetPolicy((), allow_private_hosts=True)
        notifier = AppriseNotifier(trusted, concurrency, timeout_s)
        return cls(settings.url.get_secret_value(), notifier)

    def close(self) -> None:
        if isinstance(self._notifier, AppriseNotifier):
            self._notifier.close()

    async def send(self, address: str, message: Message) -> None:
        """Send `message` to `address`; DeliveryFailed says why (never the operator's URL)."""
        await self._notifier.send(with_recipient(self._url, address), message)


class MailRouting:
    """The notifier for users' targets: own-mail targets go through jobwire's mail, every
    other target through `users` (which holds them to the target policy)."""

    def __init__(self, users: Notifier, mail: SystemMail | None) -> None:
        self._users = users
        self._mail = mail

    async def send(self, target: str, message: Message) -> None:
        address = own_mail_address(target)
        if address is None:
            await self._users.send(target, message)
            return
        if self._mail is None:
            raise DeliveryFailed(
                "this alert goes by jobwire's own email, which is off: the operator sets "
                "JOBWIRE_MAIL__URL"
            )
        await self._mail.send(address, message)
