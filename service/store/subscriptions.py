"""Subscriptions as stored: what each person asked for, and the changes a running matcher polls."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.schema import subscriptions, utcnow
from service.subscriptions import Subscription, SubscriptionIn


class Subscriptions:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, spec: SubscriptionIn, owner: str | None = None) -> Subscription:
        now = utcnow()
        row = {
            **spec.model_dump(),
            "id": uuid.uuid4().hex,
            "owner": owner,
            "deleted": False,
            "created_at": now,
            "updated_at": now,
        }
        async with self.engine.begin() as conn:
            await conn.execute(subscriptions.insert().values(row))
        return _subscription(row)

    async def get(self, subscription_id: str, owner: str | None = None) -> Subscription | None:
        query = select(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.deleted.is_(False)
        )
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _subscription(row) if row else None

    async def all(self, owner: str | None = None) -> list[Subscription]:
        query = (
            select(subscriptions)
            .where(subscriptions.c.deleted.is_(False))
            .order_by(subscriptions.c.created_at, subscriptions.c.id)
        )
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_subscription(row) for row in rows]

    async def update(
        self, subscription_id: str, spec: SubscriptionIn, owner: str | None = None
    ) -> Subscription | None:
        """Replace what a subscription asks for; None if it does not exist (for this owner)."""
        query = update(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.deleted.is_(False)
        )
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        async with self.engine.begin() as conn:
            result = await conn.execute(query.values(**spec.model_dump(), updated_at=utcnow()))
        if result.rowcount == 0:
            return None
        return await self.get(subscription_id)

    async def set_active(self, subscription_id: str, active: bool) -> Subscription | None:
        """Pause or resume a subscription whoever owns it (an unsubscribe link)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(subscriptions)
                .where(subscriptions.c.id == subscription_id, subscriptions.c.deleted.is_(False))
                .values(active=active, updated_at=utcnow())
            )
        return await self.get(subscription_id)

    async def count(self, owner: str) -> int:
        query = select(func.count()).where(
            subscriptions.c.owner == owner, subscriptions.c.deleted.is_(False)
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def delete(self, subscription_id: str, owner: str | None = None) -> bool:
        query = update(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.deleted.is_(False)
        )
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        async with self.engine.begin() as conn:
            result = await conn.execute(query.values(deleted=True, updated_at=utcnow()))
        return bool(result.rowcount)

    async def changes(
        self, since: datetime | None
    ) -> tuple[list[tuple[Subscription, bool]], datetime | None]:
        """Subscriptions changed after `since`, each with whether it should be matched.

        Returns the changes and the newest change time seen, to pass back next time. Callers
        apply changes idempotently, so the small overlap below (for writers whose clocks or
        commits straddle the poll) costs nothing.
        """
        query = select(subscriptions).order_by(subscriptions.c.updated_at)
        if since is not None:
            query = query.where(subscriptions.c.updated_at > since - timedelta(seconds=2))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        changes = [(_subscription(row), bool(row["active"] and not row["deleted"])) for row in rows]
        newest = rows[-1]["updated_at"] if rows else since
        return changes, newest


def _subscription(row: Any) -> Subscription:
    return Subscription.model_construct(**{k: row[k] for k in Subscription.model_fields})
