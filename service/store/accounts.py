"""Users of the API (only a hash of each key is kept), and erasing everything of one of them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.engine import insert
from service.store.schema import deliveries, subscriptions, targets, users, utcnow


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Erased:
    """What erasing a user removed: counts only, so it can be logged."""

    user_id: str
    subscriptions: int
    deliveries: int


class Accounts:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = insert(engine)

    async def add(self, name: str, key_hash: str) -> User | None:
        """A new user; None if the name is taken."""
        user = User(uuid.uuid4().hex, name, utcnow())
        row = {"id": user.id, "name": name, "key_hash": key_hash, "created_at": user.created_at}
        async with self.engine.begin() as conn:
            inserted = await conn.execute(
                self._insert(users).on_conflict_do_nothing().returning(users.c.id), [row]
            )
            if not inserted.all():
                return None
        return user

    async def by_key_hash(self, key_hash: str) -> User | None:
        return await self._one(users.c.key_hash == key_hash)

    async def by_name(self, name: str) -> User | None:
        return await self._one(users.c.name == name)

    async def by_id(self, user_id: str) -> User | None:
        return await self._one(users.c.id == user_id)

    async def _one(self, where: ColumnElement[bool]) -> User | None:
        query = select(users.c.id, users.c.name, users.c.created_at).where(where)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return User(*row) if row else None

    async def all(self) -> list[User]:
        query = select(users.c.id, users.c.name, users.c.created_at).order_by(users.c.name)
        async with self.engine.connect() as conn:
            return [User(*row) for row in await conn.execute(query)]

    async def erase(self, user_id: str) -> Erased | None:
        """Remove a user and everything of theirs, in one transaction: their key, their ledger
        rows, and what their subscriptions asked for and where they sent it. None if there is
        no such user.

        A subscription row stays as an empty tombstone (no name, criteria or targets, no owner),
        because running instances learn of deletions by polling for changed rows; retention
        removes tombstones later.
        """
        async with self.engine.begin() as conn:
            found = await conn.execute(delete(users).where(users.c.id == user_id))
            if not found.rowcount:
                return None
            live = await conn.execute(
                select(func.count()).where(
                    subscriptions.c.owner == user_id, subscriptions.c.deleted.is_(False)
                )
            )
            owned = select(subscriptions.c.id).where(subscriptions.c.owner == user_id)
            removed = await conn.execute(
                delete(deliveries).where(
                    deliveries.c.target_id.in_(
                        select(targets.c.id).where(targets.c.subscription_id.in_(owned))
                    )
                )
            )
            await conn.execute(delete(targets).where(targets.c.subscription_id.in_(owned)))
            await conn.execute(
                update(subscriptions)
                .where(subscriptions.c.owner == user_id)
                .values(
                    owner=None,
                    name="",
                    employers=[],
                    titles=[],
                    cities=[],
                    exclude=[],
                    active=False,
                    deleted=True,
                    updated_at=utcnow(),
                )
            )
        return Erased(user_id, int(live.scalar_one()), removed.rowcount)
