"""The store: subscriptions, recent events, the delivery ledger, users and service secrets.

One schema for SQLite (the embedded default) and PostgreSQL (to scale out), owned by Alembic
(`migrations/`). Each concern has its module and is reached through one `Store`:
`store.subscriptions`, `store.ledger`, `store.events`, `store.accounts`, `store.secrets`, and
for the web page `store.api_keys`, `store.email_tokens`, `store.web_sessions`.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store import migrate
from service.store.accounts import Accounts, Erased, User
from service.store.api_keys import ApiKeys
from service.store.crypto import Sealer
from service.store.email_tokens import EmailTokens
from service.store.engine import open_engine
from service.store.errors import StoreUnavailable, describe_failure, explain, shown
from service.store.events import RecentEvents
from service.store.ledger import (
    DELIVERY_STATUSES,
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    Ledger,
    Match,
    Recording,
)
from service.store.schema import metadata, utcnow
from service.store.secrets import ServiceSecrets
from service.store.subscriptions import Subscriptions
from service.store.target_state import TargetState
from service.store.web_sessions import WebSessions

log = structlog.get_logger("jobwire.store")

__all__ = [
    "DELIVERY_STATUSES",
    "ClaimedDelivery",
    "Delivery",
    "DeliveryStatus",
    "Erased",
    "Match",
    "Recording",
    "Store",
    "StoreUnavailable",
    "User",
    "describe_failure",
    "explain",
    "metadata",
    "utcnow",
]


class Store:
    """Async access to every table, on SQLite or PostgreSQL."""

    def __init__(self, engine: AsyncEngine, sealer: Sealer | None = None) -> None:
        self.engine = engine
        self.sealer = sealer or Sealer()
        self.subscriptions = Subscriptions(engine, self.sealer)
        self.ledger = Ledger(engine, self.sealer)
        self.events = RecentEvents(engine)
        self.accounts = Accounts(engine)
        self.secrets = ServiceSecrets(engine, self.sealer)
        self.api_keys = ApiKeys(engine)
        self.email_tokens = EmailTokens(engine)
        self.web_sessions = WebSessions(engine)
        self.target_state = TargetState(engine, self.sealer)

    @classmethod
    async def open(
        cls,
        url: str,
        auto_migrate: bool | None = None,
        keys: Sequence[str] = (),
        seal_plain: bool = True,
    ) -> Store:
        """Connect, check the schema is the one this code needs, and that `keys` open the
        secrets it holds (sealing any still in plain text when keys are set, and saying what
        targets made before migration 0010 are sent through, unless `seal_plain` is off: a
        look that must not write, `jobwire status`).

        `auto_migrate` upgrades an outdated schema (None: on SQLite, not on PostgreSQL, where an
        operator upgrades on purpose with `jobwire db upgrade`). Every failure is one
        StoreUnavailable line that names the fix.
        """
        engine = cls.connect(url)
        if auto_migrate is None:
            auto_migrate = engine.dialect.name == "sqlite"
        store = cls(engine, Sealer(keys))
        try:
            await migrate.ensure_current(engine, auto_migrate)
            await store.secrets.check_keys()
            if seal_plain and store.sealer.enabled and await store.secrets.plain_count():
                sealed = await store.secrets.reseal(only_plain=True)
                log.info("store.sealed", secrets=sealed, reason="keys are set")
            if seal_plain and (filled := await store.subscriptions.fill_sent_via()):
                log.info("store.targets_routed", targets=filled, reason="migration 0010")
        except Exception as exc:
            await engine.dispose()
            raise StoreUnavailable(explain(exc, url)) from exc
        return store

    @staticmethod
    def connect(url: str) -> AsyncEngine:
        """An engine on the store, not yet checked against the schema (`jobwire db`)."""
        try:
            return open_engine(url)
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise StoreUnavailable(
                f"cannot open the store at {shown(url)} ({type(exc).__name__}: {exc}); "
                "check JOBWIRE_STORE__URL"
            ) from exc

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))
