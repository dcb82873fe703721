"""Links jobwire emails that work once and expire: sign-up confirmations and sign-in links.

The link carries a random token; the store keeps only its SHA-256, so a copy of the database
opens nothing. Using a link deletes its row in the same statement that reads it (DELETE ...
RETURNING), so two clicks at the same moment cannot both succeed. Expired rows are deleted
whenever a new link is made.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.crypto import token_hash
from service.store.schema import email_tokens, utcnow

Purpose = Literal["confirm", "sign-in"]


@dataclass(frozen=True, slots=True)
class EmailToken:
    """What a link was made for: the address it went to, and for a sign-up what it asked."""

    purpose: Purpose
    email: str
    payload: dict[str, Any] | None
    expires_at: datetime


class EmailTokens:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def issue(
        self,
        purpose: Purpose,
        email: str,
        valid_for: timedelta,
        payload: dict[str, Any] | None = None,
    ) -> str:
        """A new token for a link to `email` (returned once, never stored)."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(delete(email_tokens).where(email_tokens.c.expires_at <= now))
            await conn.execute(
                email_tokens.insert().values(
                    token_hash=token_hash(token),
                    purpose=purpose,
                    email=email,
                    payload=payload,
                    created_at=now,
                    expires_at=now + valid_for,
                )
            )
        return token

    async def peek(self, purpose: Purpose, token: str) -> EmailToken | None:
        """The link's content if it is still valid, leaving it valid (the page that asks)."""
        query = select(
            email_tokens.c.purpose,
            email_tokens.c.email,
            email_tokens.c.payload,
            email_tokens.c.expires_at,
        ).where(*self._valid(purpose, token))
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return EmailToken(*row) if row else None

    async def use(self, purpose: Purpose, token: str) -> EmailToken | None:
        """The link's content if it is still valid, and it is valid no more."""
        query = (
            delete(email_tokens)
            .where(*self._valid(purpose, token))
            .returning(
                email_tokens.c.purpose,
                email_tokens.c.email,
                email_tokens.c.payload,
                email_tokens.c.expires_at,
            )
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(query)).first()
        return EmailToken(*row) if row else None

    @staticmethod
    def _valid(purpose: Purpose, token: str) -> tuple[Any, ...]:
        return (
            email_tokens.c.token_hash == token_hash(token),
            email_tokens.c.purpose == purpose,
            email_tokens.c.expires_at > utcnow(),
        )
