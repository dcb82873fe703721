"""Meta-alerts: when alerting itself fails, the people concerned hear about it.

When a target is declared dead (every attempt failed), its owner is told through the
subscription's other targets (the first that takes the notice), or else by email at the address
they confirmed (or a user name the operator gave as an address), through jobwire's own mail
(JOBWIRE_MAIL__URL);
the operator is told through JOBWIRE_OPERATOR__NOTIFY. Each notice says why the target failed.
When the target takes an alert again, both are told once more.

At most one "dead" notice per target a day: a dead target is probed again and again, and a
flapping one dies again and again, and each of those would otherwise be one more message. A
"recovered" notice follows only a "dead" notice that was sent.

Who was told is kept in the store (`target_notices`), so instances and restarts share it.
Notices are queued and sent by `run`, one at a time: delivery never waits for them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import structlog

from service.delivery import DeliveryFailed, Message, Notifier
from service.operations.metrics import Metrics
from service.own_mail import own_mail_target
from service.redaction import mask
from service.store import ClaimedDelivery, explain, utcnow
from service.store.target_state import TargetOwner, TargetState

log = structlog.get_logger("jobwire.meta_alerts")

QUIET = timedelta(days=1)
EMAIL = re.compile(r"[^@\s/?#&]+@[^@\s/?#&]+\.[^@\s/?#&]+")

Kind = Literal["dead", "recovered"]


@dataclass(frozen=True, slots=True)
class _Notice:
    kind: Kind
    target_id: int
    error: str = ""
    also_dead: int = 0


class MetaAlerts:
    """A delivery observer that tells owners and the operator about dead and recovered targets."""

    def __init__(
        self,
        state: TargetState,
        notifier: Notifier,
        metrics: Metrics,
        operator_url: str | None = None,
        owner_mail: bool = False,
        quiet: timedelta = QUIET,
        clock: Callable[[], datetime] = utcnow,
        operator_notifier: Notifier | None = None,
    ) -> None:
        self.state = state
        # Owners' targets are users' URLs: sent through the target policy like any alert.
        self.notifier = notifier
        # The operator's own URLs (JOBWIRE_OPERATOR__*) may be on a private network, as a mail
        # relay often is: the policy for users' targets is not for them.
        self.operator_notifier = operator_notifier or notifier
        self.metrics = metrics
        self.operator_url = operator_url
        # jobwire's own mail is set (JOBWIRE_MAIL__URL): owners can be written to.
        self.owner_mail = owner_mail
        self.quiet = quiet
        self.clock = clock
        self._queue: asyncio.Queue[_Notice] = asyncio.Queue()

    # -- DeliveryObserver --------------------------------------------------------------------

    def alerts_sent(self, alerts: Sequence[ClaimedDelivery], send_s: float) -> None:
        pass

    def alerts_failed(self, alerts: Sequence[ClaimedDelivery], send_s: float, dead: bool) -> None:
        pass

    def target_dead(self, target_id: int, error: str, also_dead: int) -> None:
        self._queue.put_nowait(_Notice("dead", target_id, error, also_dead))

    def target_recovered(self, target_id: int) -> None:
        self._queue.put_nowait(_Notice("recovered", target_id))

    # -- sending -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Send queued notices until `stop`; what is still queued then is dropped, and said."""
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                getting = asyncio.create_task(self._queue.get())
                await asyncio.wait([getting, stopping], return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    break
                try:
                    await self.handle(getting.result())
                except Exception as exc:  # the store is away: this notice is lost, not the rest
                    log.error("meta_alert.failed", error=explain(exc))
        finally:
            stopping.cancel()
            if not self._queue.empty():
                log.warning("meta_alert.dropped", notices=self._queue.qsize())

    async def handle(self, notice: _Notice) -> None:
        """Tell whoever this notice is for, unless they were told already (by any instance:
        the store keeps who was told, `target_notices`)."""
        if notice.kind == "dead":
            told = await self.state.claim_dead_notice(notice.target_id, self.clock(), self.quiet)
        else:  # only after a dead notice that was sent, and once
            told = await self.state.claim_recovered_notice(notice.target_id)
        if not told:
            return
        owner = await self.state.owner_of(notice.target_id)
        if owner is not None:  # None: the subscription was deleted meanwhile
            await self._tell_owner(notice, owner)
            await self._tell_operator(notice, owner)

    async def _tell_owner(self, notice: _Notice, owner: TargetOwner) -> None:
        message = owner_message(notice.kind, owner, notice.error, notice.also_dead)
        tried: list[str] = []
        for url in owner.other_targets:
            tried.append(mask(url))
            if await self._send(url, message, "owner", notice, owner):
                return
        # The address they confirmed; else a user name the operator gave as an address
        # (`jobwire users add ana@example.com`). A confirmed address too long for a user name
        # is only in the first.
        address = owner.owner_email or owner.owner_name or ""
        if self.owner_mail and EMAIL.fullmatch(address):
            # Through jobwire's own mail (the notifier routes this form there): no URL of the
            # operator's is shown or kept anywhere.
            url = own_mail_target(address)
            tried.append(mask(url))
            if await self._send(url, message, "owner", notice, owner):
                return
        outcome = "failed" if tried else "skipped"
        self.metrics.meta_alert("owner", notice.kind, outcome)
        log.warning(
            "meta_alert.owner_not_told",
            kind=notice.kind,
            target_id=owner.target_id,
            subscription_id=owner.subscription_id,
            tried=tried,
            hint="the subscription has no other target that works, and no email address to "
            "write to (set JOBWIRE_MAIL__URL; users who confirmed an address, or are named by "
            "one, are written to)",
        )

    async def _tell_operator(self, notice: _Notice, owner: TargetOwner) -> None:
        if not self.operator_url:
            return
        message = operator_message(notice.kind, owner, notice.error, notice.also_dead)
        sent = await self._send(self.operator_url, message, "operator", notice, owner, True)
        if not sent:
            self.metrics.meta_alert("operator", notice.kind, "failed")

    async def _send(
        self,
        url: str,
        message: Message,
        recipient: str,
        notice: _Notice,
        owner: TargetOwner,
        operators: bool = False,
    ) -> bool:
        """Send one notice; `operators` for a URL the operator configured."""
        shown = mask(url)
        notifier = self.operator_notifier if operators else self.notifier
        try:
            await notifier.send(url, message)
        except Exception as exc:
            # A DeliveryFailed says why, safe to show; anything else may hold the URL: its type.
            error = str(exc) if isinstance(exc, DeliveryFailed) else type(exc).__name__
            log.warning(
                "meta_alert.send_failed",
                recipient=recipient,
                kind=notice.kind,
                via=shown,
                error=error,
            )
            return False
        self.metrics.meta_alert(recipient, notice.kind, "sent")
        log.info(
            "meta_alert.sent",
            recipient=recipient,
            kind=notice.kind,
            target_id=owner.target_id,
            target=mask(owner.target),
            subscription_id=owner.subscription_id,
            via=shown,
        )
        return True


def owner_message(kind: Kind, owner: TargetOwner, error: str, also_dead: int) -> Message:
    what = "your jobwire subscription"
    if owner.subscription_name:
        what += f" {owner.subscription_name!r}"
    target = mask(owner.target)
    if kind == "dead":
        return Message(
            "jobwire: alerts to one of your targets are failing",
            f"jobwire could not deliver the alerts of {what} to\n  {target}\n"
            f"The last attempt failed with: {error}\n\n"
            f"jobwire stopped sending to it{_and_dead(also_dead)}. Fix the target, or replace "
            "it in your subscription: new alerts go to it again as soon as it answers, and you "
            "will get one more message when it does.",
        )
    return Message(
        "jobwire: your target works again",
        f"The alerts of {what} reach\n  {target}\nagain. Alerts that could not be delivered "
        "while it failed are not sent again by themselves: ask the operator if you need them.",
    )


def operator_message(kind: Kind, owner: TargetOwner, error: str, also_dead: int) -> Message:
    target = mask(owner.target)
    whose = (
        f"subscription {owner.subscription_id} {owner.subscription_name!r}, "
        f"owner {owner.owner_name or '(none: made by the operator)'}"
    )
    if kind == "dead":
        return Message(
            f"jobwire: target dead: {target}",
            f"Target {target} (id {owner.target_id}; {whose}) failed every attempt: {error}\n"
            f"{also_dead} waiting alert(s) died with it.\n\n"
            f"See: jobwire deliveries --status dead --subscription {owner.subscription_id}\n"
            "After a fix: jobwire deliveries retry --dead",
        )
    return Message(
        f"jobwire: target recovered: {target}",
        f"Target {target} (id {owner.target_id}; {whose}) takes alerts again.\n"
        "Alerts that died meanwhile stay dead: jobwire deliveries retry --dead sends them.",
    )


def _and_dead(also_dead: int) -> str:
    if also_dead <= 0:
        return ""
    return f"; {also_dead + 1} alert(s) for it are marked undelivered"
