"""Signing in to the web page: a session cookie for the browser, its hash in the store.

The cookie is HttpOnly (scripts cannot read it), SameSite=Lax (other sites' forms do not carry
it) and, when the page is served over HTTPS, Secure with the `__Host-` prefix (only this host,
only over HTTPS; a sibling subdomain cannot set one). Served over HTTPS means: this request
came over HTTPS, or JOBWIRE_API__PUBLIC_URL starts with https:// (behind a proxy that ends TLS).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request, Response

from service.accounts import Actor
from service.store import User
from service.web.context import ApiContext, Context

SESSION = "jobwire_session"


def over_https(request: Request, ctx: ApiContext) -> bool:
    return request.url.scheme == "https" or ctx.base_url.startswith("https://")


def cookie_name(base: str, secure: bool) -> str:
    return f"__Host-{base}" if secure else base


def set_cookie(
    response: Response, name: str, value: str, secure: bool, max_age: int | None = None
) -> None:
    response.set_cookie(
        cookie_name(name, secure),
        value,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def session_token(request: Request, ctx: ApiContext) -> str | None:
    return request.cookies.get(cookie_name(SESSION, over_https(request, ctx)))


async def start(response: Response, request: Request, ctx: ApiContext, user: User) -> None:
    """Sign `user` in on this browser."""
    lasts = timedelta(hours=ctx.web.session_hours)
    token = await ctx.store.web_sessions.start(user.id, lasts)
    set_cookie(
        response, SESSION, token, over_https(request, ctx), max_age=int(lasts.total_seconds())
    )


async def end(response: Response, request: Request, ctx: ApiContext) -> None:
    token = session_token(request, ctx)
    if token:
        await ctx.store.web_sessions.end(token)
    secure = over_https(request, ctx)
    response.delete_cookie(
        cookie_name(SESSION, secure), path="/", secure=secure, httponly=True, samesite="lax"
    )


async def signed_in(request: Request, ctx: ApiContext) -> User | None:
    token = session_token(request, ctx)
    if not token or len(token) > 100:
        return None
    user_id = await ctx.store.web_sessions.user_of(token)
    return await ctx.store.accounts.by_id(user_id) if user_id else None


class SignInNeeded(Exception):
    """A page for signed-in people, asked for without a session: go and sign in."""


async def _viewer(request: Request, ctx: Context) -> User:
    user = await signed_in(request, ctx)
    if user is None:
        raise SignInNeeded()
    return user


async def _maybe_viewer(request: Request, ctx: Context) -> User | None:
    return await signed_in(request, ctx)


Viewer = Annotated[User, Depends(_viewer)]
MaybeViewer = Annotated[User | None, Depends(_maybe_viewer)]


def actor_of(user: User) -> Actor:
    return Actor(name=user.name, user_id=user.id)
