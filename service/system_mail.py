"""jobwire's own email: sign-up confirmations, sign-in links, and the alerts of people who
signed up on the web page, all sent through the operator's Apprise URL (JOBWIRE_MAIL__URL).

A person who signs up on the page gets alerts by email, yet their subscription must not hold
the operator's mail URL: it carries the operator's SMTP password, which `/me/export?targets=
full` shows a user whole; a new password would leave every stored copy broken; and an operator's
relay on a private address is one the users' target policy rightly refuses. So the stored
target names the address only, in a reserved form Apprise can parse and no real server has
(`.invalid` is reserved by RFC 2606):

    mailto://jobwire@jobwire.invalid?to=ana%40example.com

`own_mail_target(address)` makes it, `own_mail_address(target)` reads it back, and
`MailRouting` (the notifier the delivery worker and test alerts use) sends such targets through
the operator's URL, as it is set now, with `to=` the address. Everything that shows a target
shows this form, which holds no secret. Only the address's owner may save it (the registry
checks it against the address the user confirmed).
"""

from __future__ import annotations

from urllib.parse import quote, unquote

import structlog

from config.settings import MailSettings
from service.delivery import AppriseNotifier, DeliveryFailed, Message, Notifier
from service.targets import TargetPolicy

log = structlog.get_logger("jobwire.mail")

OWN_MAIL_PREFIX = "mailto://jobwire@jobwire.invalid?to="


def own_mail_target(address: str) -> str:
    """The target that sends a subscription's alerts to `address` through jobwire's mail."""
    return OWN_MAIL_PREFIX + quote(address, safe="@")


def own_mail_address(target: str) -> str | None:
    """The address an own-mail target sends to; None for any other target."""
    if not target.lower().startswith(OWN_MAIL_PREFIX):
        return None
    rest = target[len(OWN_MAIL_PREFIX) :]
    if "&" in rest or "?" in rest or "/" in rest:
        return None  # the reserved form has exactly one setting: one address
    address = unquote(rest)
    return address if "@" in address and "," not in address else None


def sends_share(target: str) -> str:
    """What a target's sends share, for the limit of sends in flight at once: its own URL, but
    every own-mail target goes through the operator's one mail server, which takes no more at
    once than any other target (JOBWIRE_DELIVERY__PER_TARGET)."""
    return OWN_MAIL_PREFIX if own_mail_address(target) is not None else target


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
