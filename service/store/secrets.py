"""Secrets jobwire makes for itself (the unsubscribe-link key), shared by every instance."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.engine import insert
from service.store.schema import service_secrets


class ServiceSecrets:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = insert(engine)

    async def get_or_create(self, name: str, candidate: str) -> str:
        """The secret called `name`, created as `candidate` by whichever instance asks first."""
        async with self.engine.begin() as conn:
            await conn.execute(
                self._insert(service_secrets).on_conflict_do_nothing(),
                [{"name": name, "value": candidate}],
            )
            found = await conn.execute(
                select(service_secrets.c.value).where(service_secrets.c.name == name)
            )
            return str(found.scalar_one())
