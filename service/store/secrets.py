"""Secrets jobwire makes for itself (the unsubscribe-link key), shared by every instance, and
sealing every secret the store holds when the operator's keys change."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.crypto import PREFIX, Sealer
from service.store.engine import insert
from service.store.schema import service_secrets, targets

# Every column that holds a secret: (table, its key column, the secret's column).
SEALED = (
    (targets, targets.c.id, targets.c.url),
    (service_secrets, service_secrets.c.name, service_secrets.c.value),
)


class ServiceSecrets:
    def __init__(self, engine: AsyncEngine, sealer: Sealer) -> None:
        self.engine = engine
        self.sealer = sealer
        self._insert = insert(engine)

    async def get_or_create(self, name: str, candidate: str) -> str:
        """The secret called `name`, created as `candidate` by whichever instance asks first."""
        async with self.engine.begin() as conn:
            await conn.execute(
                self._insert(service_secrets).on_conflict_do_nothing(),
                [{"name": name, "value": self.sealer.seal(candidate)}],
            )
            found = await conn.execute(
                select(service_secrets.c.value).where(service_secrets.c.name == name)
            )
            return self.sealer.open(str(found.scalar_one()))

    async def check_keys(self) -> None:
        """Refuse to start when the store holds sealed secrets the keys cannot open."""
        async with self.engine.connect() as conn:
            for _, _, column in SEALED:
                sample = (
                    await conn.execute(select(column).where(column.like(f"{PREFIX}%")).limit(1))
                ).scalar_one_or_none()
                if sample is not None:
                    self.sealer.open(sample)  # raises SecretsLocked, naming the setting

    async def plain_count(self) -> int:
        """How many secrets are stored in plain text."""
        total = 0
        async with self.engine.connect() as conn:
            for table, _, column in SEALED:
                found = await conn.execute(
                    select(func.count()).select_from(table).where(~column.like(f"{PREFIX}%"))
                )
                total += int(found.scalar_one())
        return total

    async def reseal(self, plain: bool = False, only_plain: bool = False) -> int:
        """Store every secret again: sealed with the first key (`plain`: in plain text, to
        stop encrypting or before a downgrade; `only_plain`: seal the ones still in plain
        text and leave the sealed ones as they are). Returns how many values changed."""
        changed = 0
        async with self.engine.begin() as conn:
            for table, key, column in SEALED:
                query = select(key, column)
                if only_plain:
                    query = query.where(~column.like(f"{PREFIX}%"))
                for row_key, stored in (await conn.execute(query)).all():
                    value = self.sealer.open(stored) if plain else self.sealer.reseal(stored)
                    if value != stored:
                        await conn.execute(
                            update(table).where(key == row_key).values({column.name: value})
                        )
                        changed += 1
        return changed
