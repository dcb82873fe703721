"""The store: subscriptions, recent events, the delivery ledger, users and service secrets.

One schema for SQLite (the embedded default) and PostgreSQL (to scale out), owned by Alembic
(`migrations/`). Each concern has its module and is reached through one `Store`:
`store.subscriptions`, `store.ledger`, `store.events`, `store.accounts`, `store.secrets`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store import migrate
from service.store.accounts import Accounts, Erased, User
from service.store.engine import open_engine
from service.store.errors import StoreUnavailable, describe_failure, explain, shown
from service.store.events import RecentEvents
from service.store.ledger import ClaimedDelivery, Delivery, DeliveryStatus, Ledger, Match
from service.store.schema import metadata, utcnow
from service.store.secrets import ServiceSecrets
from service.store.subscriptions import Subscriptions

__all__ = [
    "ClaimedDelivery",
    "Delivery",
    "DeliveryStatus",
    "Erased",
    "Match",
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

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.subscriptions = Subscriptions(engine)
        self.ledger = Ledger(engine)
        self.events = RecentEvents(engine)
        self.accounts = Accounts(engine)
        self.secrets = ServiceSecrets(engine)

    @classmethod
    async def open(cls, url: str, auto_migrate: bool | None = None) -> Store:
        """Connect and check the schema is the one this code needs.

        `auto_migrate` upgrades an outdated schema (None: on SQLite, not on PostgreSQL, where an
        operator upgrades on purpose with `jobwire db upgrade`). Every failure is one
        StoreUnavailable line that names the fix.
        """
        engine = cls.connect(url)
        if auto_migrate is None:
            auto_migrate = engine.dialect.name == "sqlite"
        try:
            await migrate.ensure_current(engine, auto_migrate)
        except Exception as exc:
            await engine.dispose()
            raise StoreUnavailable(explain(exc, url)) from exc
        return cls(engine)

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
