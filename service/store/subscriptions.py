"""Subscriptions as stored: what each person asked for, and the changes a running matcher polls."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.schema import subscriptions, utcnow
from service.subscriptions import Subscription, SubscriptionIn


class OwnerLimitReached(Exception):
    """The owner already has `owned` subscriptions, the most allowed; nothing was added."""

    def __init__(self, owned: int) -> None:
        super().__init__(f"{owned} subscriptions already")
        self.owned = owned


class Subscriptions:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(
        self, spec: SubscriptionIn, owner: str | None = None, max_owned: int | None = None
    ) -> Subscription:
        """Store a new subscription; with `max_owned`, only if the owner has fewer than that.

        Counting and inserting happen in one transaction that holds a per-owner lock, so
        concurrent adds cannot all see "one below the limit" and all insert (30 at once took
        a user with 95 of 100 to 120). PostgreSQL: a transaction-scoped advisory lock on the
        owner. SQLite: BEGIN IMMEDIATE, which takes the database's write lock before reading.
        """
        now = utcnow()
        row = {
            **spec.model_dump(),
            "id": uuid.uuid4().hex,
            "owner": owner,
            "deleted": False,
            "created_at": now,
            "updated_at": now,
        }
        if owner is None or max_owned is None:
            async with self.engine.begin() as conn:
                await conn.execute(subscriptions.insert().values(row))
            return _subscription(row)
        async with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                # The driver would BEGIN (deferred) only at the INSERT, after the count.
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                await conn.execute(
                    select(func.pg_advisory_xact_lock(func.hashtext(f"subscriptions:{owner}")))
                )
            try:
                owned = int((await conn.execute(_count(owner))).scalar_one())
                if owned >= max_owned:
                    raise OwnerLimitReached(owned)
                await conn.execute(subscriptions.insert().values(row))
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()
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
        async with self.engine.connect() as conn:
            return int((await conn.execute(_count(owner))).scalar_one())

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


def _count(owner: str) -> Select[int]:
    return select(func.count()).where(
        subscriptions.c.owner == owner, subscriptions.c.deleted.is_(False)
    )


def _subscription(row: Any) -> Subscription:
    return Subscription.model_construct(**{k: row[k] for k in Subscription.model_fields})
