"""Subscriptions as users manage them: ownership, limits and the target policy.

The API and the CLI both go through here, so a rule enforced for one holds for the other.
Each refusal names the field it is about, and nothing is stored when any check fails.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from config.settings import LimitSettings
from service.accounts import Actor
from service.delivery import DeliveryFailed, Notifier, render_test
from service.egress import EgressRefused
from service.own_mail import own_mail_address
from service.redaction import mask, scrub
from service.store import Store
from service.store.subscriptions import OwnerLimitReached
from service.subscriptions import Subscription, SubscriptionIn, SubscriptionPatch
from service.targets import TargetPolicy, TargetRefused

LISTED_FIELDS = ("employers", "titles", "cities", "exclude")
# Ids are uuid4 hex; anything else is not found without asking the store.
SUBSCRIPTION_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    message: str


class SubscriptionRefused(Exception):
    """Input that cannot be saved; each problem names its field."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems

    @classmethod
    def from_validation(cls, exc: ValidationError) -> SubscriptionRefused:
        return cls([problem_of(error) for error in exc.errors()])


class NotFound(Exception):
    """No such subscription for this actor (others' subscriptions are not found either)."""


class LimitReached(Exception):
    """The actor already has as many subscriptions as allowed."""


def problem_of(error: Any) -> Problem:
    """One pydantic error as a Problem, without the input (which may be a password)."""
    if error["type"] == "json_invalid":
        return Problem("body", f"not valid JSON ({error.get('ctx', {}).get('error', 'syntax')})")
    location = [str(part) for part in error["loc"] if part not in {"body", "path", "query"}]
    message = str(error["msg"]).removeprefix("Value error, ")
    return Problem(".".join(location) or "body", message)


@dataclass(frozen=True, slots=True)
class TargetResult:
    target: str
    ok: bool
    error: str | None


class SubscriptionRegistry:
    def __init__(
        self, store: Store, policy: TargetPolicy, limits: LimitSettings, mail_on: bool = False
    ) -> None:
        self.store = store
        self.policy = policy
        self.limits = limits
        # Whether jobwire sends email of its own (JOBWIRE_MAIL__URL): own-mail targets need it.
        self.mail_on = mail_on

    async def create(self, actor: Actor, spec: SubscriptionIn) -> Subscription:
        await self._check(actor, spec, new_targets=spec.notify)
        try:
            return await self.store.subscriptions.add(
                spec, owner=actor.owner, max_owned=self.limits.subscriptions_per_user
            )
        except OwnerLimitReached as exc:
            raise LimitReached(
                f"{actor.name} has {exc.owned} subscriptions, the most allowed; "
                "delete one before adding another"
            ) from None

    async def list_for(self, actor: Actor) -> list[Subscription]:
        return await self.store.subscriptions.all(owner=actor.owner)

    async def get(self, actor: Actor, subscription_id: str) -> Subscription:
        if not SUBSCRIPTION_ID.fullmatch(subscription_id):
            raise NotFound(subscription_id)
        found = await self.store.subscriptions.get(subscription_id, owner=actor.owner)
        if found is None:
            raise NotFound(subscription_id)
        return found

    async def update(
        self, actor: Actor, subscription_id: str, patch: SubscriptionPatch
    ) -> Subscription:
        current = await self.get(actor, subscription_id)
        merged = {
            **current.model_dump(include=set(SubscriptionIn.model_fields)),
            **patch.model_dump(exclude_unset=True),
        }
        try:
            spec = SubscriptionIn.model_validate(merged)
        except ValidationError as exc:
            raise SubscriptionRefused.from_validation(exc) from None
        # Targets saved before the operator changed the policy stay until the user changes them.
        await self._check(
            actor, spec, new_targets=[u for u in spec.notify if u not in current.notify]
        )
        updated = await self.store.subscriptions.update(subscription_id, spec, owner=actor.owner)
        if updated is None:
            raise NotFound(subscription_id)
        return updated

    async def delete(self, actor: Actor, subscription_id: str) -> None:
        if not SUBSCRIPTION_ID.fullmatch(subscription_id):
            raise NotFound(subscription_id)
        if not await self.store.subscriptions.delete(subscription_id, owner=actor.owner):
            raise NotFound(subscription_id)

    async def send_test(
        self,
        actor: Actor,
        subscription_id: str,
        notifier: Notifier,
        unsubscribe_url: str | None = None,
    ) -> list[TargetResult]:
        """Send one test alert to each target; each target reports on its own.

        `notifier` should check every connection at send time (AppriseNotifier does): a
        target saved as public may resolve to an internal address by now.
        """
        subscription = await self.get(actor, subscription_id)
        message = render_test(subscription.name, unsubscribe_url)

        async def one(target: str) -> TargetResult:
            try:
                await notifier.send(target, message)
            except (DeliveryFailed, EgressRefused) as exc:
                return TargetResult(mask(target), False, scrub(str(exc), target))
            except Exception as exc:
                return TargetResult(
                    mask(target), False, scrub(f"{type(exc).__name__}: {exc}", target)
                )
            return TargetResult(mask(target), True, None)

        return list(await asyncio.gather(*(one(target) for target in subscription.notify)))

    async def _check(self, actor: Actor, spec: SubscriptionIn, new_targets: list[str]) -> None:
        problems = [
            Problem(field, f"at most {self.limits.values_per_field} values (got {len(values)})")
            for field in LISTED_FIELDS
            if len(values := getattr(spec, field)) > self.limits.values_per_field
        ]
        if len(spec.notify) > self.limits.targets_per_subscription:
            problems.append(
                Problem(
                    "notify",
                    f"at most {self.limits.targets_per_subscription} targets "
                    f"(got {len(spec.notify)})",
                )
            )
        for url in new_targets:
            if (address := own_mail_address(url)) is not None:
                if refused := await self._own_mail_refused(actor, address):
                    problems.append(Problem(f"notify.{spec.notify.index(url)}", refused))
                continue
            try:
                # Resolving a host name blocks, so that check goes to a thread.
                if self.policy.may_resolve(url):
                    await asyncio.to_thread(self.policy.check, url)
                else:
                    self.policy.check(url)
            except TargetRefused as exc:
                problems.append(Problem(f"notify.{spec.notify.index(url)}", str(exc)))
        if problems:
            raise SubscriptionRefused(problems)

    async def _own_mail_refused(self, actor: Actor, address: str) -> str | None:
        """Why `actor` may not have alerts emailed to `address` by jobwire itself, if not.

        jobwire's own mail goes out through the operator's server, so it may only go to an
        address its owner proved is theirs; the operator may send to any.
        """
        if not self.mail_on:
            return "jobwire sends no email of its own here (JOBWIRE_MAIL__URL is not set)"
        if actor.is_operator:
            return None
        user = await self.store.accounts.by_id(actor.user_id) if actor.user_id else None
        if user is None or user.email != address:
            return (
                "jobwire's own email goes only to the address you confirmed on the web page; "
                "use a mailto:// or mailtos:// target of your own for another address"
            )
        return None
