"""A user's API keys: several per user, each revocable on its own. Only hashes are kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.schema import api_keys, utcnow


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as its holder sees it listed: never the key, which is shown once when made."""

    id: int
    label: str
    created_at: datetime


class KeyLimitReached(Exception):
    """The user holds as many keys as allowed; nothing was added."""


class ApiKeys:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, user_id: str, key_hash: str, label: str, max_keys: int) -> ApiKey:
        """A new key for `user_id`; KeyLimitReached if they hold `max_keys` already.

        Counting and inserting share one transaction, not a lock: two requests of one user at
        the same moment may both pass the count. The limit keeps an account from growing
        without end (one over at most per racing request); it is not a quota.
        """
        now = utcnow()
        async with self.engine.begin() as conn:
            held = (
                await conn.execute(select(func.count()).where(api_keys.c.user_id == user_id))
            ).scalar_one()
            if int(held) >= max_keys:
                raise KeyLimitReached(f"{held} keys already")
            inserted = await conn.execute(
                api_keys.insert()
                .values(user_id=user_id, key_hash=key_hash, label=label, created_at=now)
                .returning(api_keys.c.id)
            )
            return ApiKey(int(inserted.scalar_one()), label, now)

    async def of(self, user_id: str) -> list[ApiKey]:
        query = (
            select(api_keys.c.id, api_keys.c.label, api_keys.c.created_at)
            .where(api_keys.c.user_id == user_id)
            .order_by(api_keys.c.id)
        )
        async with self.engine.connect() as conn:
            return [ApiKey(*row) for row in await conn.execute(query)]

    async def revoke(self, user_id: str, key_id: int) -> bool:
        """Delete one of the user's keys; False if they hold no key with that id."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(api_keys).where(api_keys.c.id == key_id, api_keys.c.user_id == user_id)
            )
        return bool(result.rowcount)
