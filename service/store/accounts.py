"""Users of the API and of the web page, and erasing everything of one of them.

A user's API keys are in `api_keys` (service/store/api_keys.py); only their hashes are kept.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.engine import insert, read
from service.store.schema import (
    TAKEN_UP,
    WAITING,
    api_keys,
    deliveries,
    email_tokens,
    owner_counts,
    subscriptions,
    target_notices,
    targets,
    users,
    utcnow,
    web_sessions,
)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    created_at: datetime
    # The address they confirmed on the web page; None for users only the operator made.
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Erased:
    """What erasing a user removed: counts only, so it can be logged."""

    user_id: str
    subscriptions: int
    deliveries: int


USER_COLUMNS = (users.c.id, users.c.name, users.c.created_at, users.c.email)
_BY_KEY_HASH = select(*USER_COLUMNS).where(
    users.c.id.in_(select(api_keys.c.user_id).where(api_keys.c.key_hash == bindparam("key_hash")))
)
OPERATOR_KEY_LABEL = "from the operator (jobwire users add)"
NAME_LENGTH = 64  # users.name


class Accounts:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = insert(engine)

    async def add(self, name: str, key_hash: str | None, email: str | None = None) -> User | None:
        """A new user with their first API key (None: no key, a user of the web page); None if
        the name or the email address is taken."""
        user = User(uuid.uuid4().hex, name, utcnow(), email)
        row = {"id": user.id, "name": name, "email": email, "created_at": user.created_at}
        async with self.engine.begin() as conn:
            inserted = await conn.execute(
                self._insert(users).on_conflict_do_nothing().returning(users.c.id), [row]
            )
            if not inserted.all():
                return None
            if key_hash is not None:
                await conn.execute(
                    api_keys.insert().values(
                        user_id=user.id,
                        key_hash=key_hash,
                        label=OPERATOR_KEY_LABEL,
                        created_at=user.created_at,
                    )
                )
        return user

    async def for_email(self, email: str) -> User:
        """The user who confirmed `email`, made now if there is none.

        A user the operator named after the address (`jobwire users add ana@example.com`) and
        who has no address yet is that person: proving the address joins the two.
        """
        found = await self.by_email(email)
        if found is not None:
            return found
        async with self.engine.begin() as conn:
            await conn.execute(
                update(users)
                .where(users.c.name == email, users.c.email.is_(None))
                .values(email=email)
            )
        found = await self.by_email(email)
        if found is not None:
            return found
        # The address is the name people recognise in `jobwire users list`, when it fits.
        name = email if len(email) <= NAME_LENGTH else uuid.uuid4().hex
        made = await self.add(name, None, email=email)
        if made is not None:
            return made
        # Made by a request that confirmed at the same moment.
        found = await self.by_email(email)
        if found is None:
            raise LookupError(f"no user for an address just confirmed ({email})")
        return found

    async def by_key_hash(self, key_hash: str) -> User | None:
        """The key's holder: looked up for every API request, so its statement is built once
        (a statement built per call cost SQLAlchemy its cache key again each time)."""
        return await self._first(_BY_KEY_HASH, {"key_hash": key_hash})

    async def by_email(self, email: str) -> User | None:
        return await self._one(users.c.email == email)

    async def by_name(self, name: str) -> User | None:
        return await self._one(users.c.name == name)

    async def by_id(self, user_id: str) -> User | None:
        return await self._one(users.c.id == user_id)

    async def _one(self, where: ColumnElement[bool]) -> User | None:
        return await self._first(select(*USER_COLUMNS).where(where))

    async def _first(
        self, query: Select[Any], parameters: dict[str, Any] | None = None
    ) -> User | None:
        row = await read(self.engine, lambda conn: conn.execute(query, parameters).first())
        return User(*row) if row else None

    async def all(self) -> list[User]:
        query = select(*USER_COLUMNS).order_by(users.c.name)
        async with self.engine.connect() as conn:
            return [User(*row) for row in await conn.execute(query)]

    async def erase(self, user_id: str) -> Erased | None:
        """Remove a user and everything of theirs, in one transaction: their keys, sessions and
        pending emailed links, their ledger rows, and what their subscriptions asked for and
        where they sent it. None if there is no such user.

        A subscription row stays as an empty tombstone (no name, criteria or targets, no owner),
        because running instances learn of deletions by polling for changed rows; retention
        removes tombstones later.
        """
        async with self.engine.begin() as conn:
            email = (
                await conn.execute(select(users.c.email).where(users.c.id == user_id))
            ).scalar_one_or_none()
            found = await conn.execute(delete(users).where(users.c.id == user_id))
            if not found.rowcount:
                return None
            await conn.execute(delete(api_keys).where(api_keys.c.user_id == user_id))
            await conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id))
            if email is not None:
                await conn.execute(delete(email_tokens).where(email_tokens.c.email == email))
            live = await conn.execute(
                select(func.count()).where(
                    subscriptions.c.owner == user_id, subscriptions.c.deleted.is_(False)
                )
            )
            owned = select(subscriptions.c.id).where(subscriptions.c.owner == user_id)
            their_targets = select(targets.c.id).where(targets.c.subscription_id.in_(owned))
            removed = 0
            for half in (TAKEN_UP, WAITING):  # each through its index (schema.py)
                gone = await conn.execute(
                    delete(deliveries).where(half, deliveries.c.target_id.in_(their_targets))
                )
                removed += gone.rowcount
            # With the targets, what meta-alerts remember of them (a new target may take a
            # deleted one's id on SQLite).
            await conn.execute(
                delete(target_notices).where(target_notices.c.target_id.in_(their_targets))
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
            # Their count, which the triggers just took to 0: their id is not kept anywhere.
            await conn.execute(delete(owner_counts).where(owner_counts.c.owner == user_id))
        return Erased(user_id, int(live.scalar_one()), removed)
