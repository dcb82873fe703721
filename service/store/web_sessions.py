"""Signed-in browsers of the web page. The cookie holds a random token, the store its SHA-256;
signing out deletes the row, and expired rows go whenever someone signs in."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.crypto import token_hash
from service.store.schema import utcnow, web_sessions


class WebSessions:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def start(self, user_id: str, lasts: timedelta) -> str:
        """A new session for `user_id`; its token (for the cookie) is returned, never stored."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
            await conn.execute(
                web_sessions.insert().values(
                    token_hash=token_hash(token),
                    user_id=user_id,
                    created_at=now,
                    expires_at=now + lasts,
                )
            )
        return token

    async def user_of(self, token: str) -> str | None:
        """The user a live session's token belongs to."""
        query = select(web_sessions.c.user_id).where(
            web_sessions.c.token_hash == token_hash(token), web_sessions.c.expires_at > utcnow()
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).scalar_one_or_none()

    async def end(self, token: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(web_sessions).where(web_sessions.c.token_hash == token_hash(token))
            )
