"""What the web app's routes need from the running service, reached through a dependency.

`create_api` (app.py) puts one `ApiContext` and the rate limits on `app.state`; routes ask for
them with `Context` and `Limits` instead of closing over them, so routes live at module level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from config.settings import LimitSettings, Settings, WebSettings
from service.delivery import Notifier
from service.registry import SubscriptionRegistry
from service.store import Store
from service.system_mail import SystemMail
from service.targets import TargetPolicy
from service.unsubscribe import UnsubscribeLinks
from service.web.mails import Outbox
from service.web.rate_limits import RateLimit


@dataclass(frozen=True)
class ApiContext:
    """What the API and the pages need from the running service."""

    store: Store
    registry: SubscriptionRegistry
    links: UnsubscribeLinks
    # Sends users' targets: test alerts (service/system_mail.py's MailRouting in `jobwire run`).
    notifier: Notifier
    operator_key: str | None
    kafka_connected: Callable[[], bool]
    # jobwire's own email (JOBWIRE_MAIL__URL); None: the page can preview but not sign up.
    mail: SystemMail | None = None
    web: WebSettings = field(default_factory=WebSettings)
    outbox: Outbox = field(default_factory=Outbox)

    @classmethod
    def of_service(
        cls,
        settings: Settings,
        store: Store,
        policy: TargetPolicy,
        links: UnsubscribeLinks,
        notifier: Notifier,
        mail: SystemMail | None,
        kafka_connected: Callable[[], bool],
    ) -> ApiContext:
        """The context `jobwire run` serves with, in its own process and in each API process
        (service/web/processes.py)."""
        operator_key = settings.api.operator_key
        return cls(
            store=store,
            registry=SubscriptionRegistry(store, policy, settings.limits, mail_on=mail is not None),
            links=links,
            notifier=notifier,
            operator_key=operator_key.get_secret_value() if operator_key else None,
            kafka_connected=kafka_connected,
            mail=mail,
            web=settings.web,
        )

    @property
    def base_url(self) -> str:
        """Where subscribers reach this service (JOBWIRE_API__PUBLIC_URL or the listen address)."""
        return self.links.base_url

    @property
    def secret(self) -> bytes:
        """Signs CSRF tokens: derived from the links' secret, which every instance shares, so
        a form one instance served is accepted by any other (and after a restart)."""
        return self.links.key_for("csrf")


@dataclass(frozen=True)
class RateLimits:
    """Per instance (see service/web/rate_limits.py)."""

    failed_auth: RateLimit  # per client address: wrong keys
    requests: RateLimit  # per key
    tests: RateLimit  # per user: test alerts are real messages to real people
    mails: RateLimit  # per address jobwire emails: confirmations and sign-in links
    mail_requests: RateLimit  # per client address: sign-ups and "email me a link"
    previews: RateLimit  # per client address: the page's live preview

    @classmethod
    def from_settings(cls, limits: LimitSettings) -> RateLimits:
        return cls(
            failed_auth=RateLimit(limits.failed_auth_per_minute),
            requests=RateLimit(limits.requests_per_minute),
            tests=RateLimit(limits.tests_per_minute),
            mails=RateLimit(
                limits.mails_per_address_per_hour / 60, burst=limits.mails_per_address_per_hour
            ),
            mail_requests=RateLimit(
                limits.mail_requests_per_client_per_hour / 60,
                burst=limits.mail_requests_per_client_per_hour,
            ),
            previews=RateLimit(limits.previews_per_minute),
        )


# Async, though they only read: FastAPI runs a plain `def` dependency in its thread pool, a
# crossing to another thread and back on every request for an attribute lookup.
async def _context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


async def _limits(request: Request) -> RateLimits:
    limits: RateLimits = request.app.state.rate_limits
    return limits


Context = Annotated[ApiContext, Depends(_context)]
Limits = Annotated[RateLimits, Depends(_limits)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
