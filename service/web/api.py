"""The subscriptions API: JSON routes over the registry, for people with an API key.

Every error is JSON with a `detail` sentence and, for refused input, the fields at fault.
Nothing a user sends is echoed back in an error, because a notify URL may hold a password.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from service import personal_data
from service.accounts import Actor, authenticate
from service.registry import LimitReached, NotFound, Problem, SubscriptionRefused, problem_of
from service.store import Store, User
from service.subscriptions import SubscriptionIn, SubscriptionOut, SubscriptionPatch
from service.web.context import ApiContext, Context, Limits, client_address
from service.web.rate_limits import retry_after

log = structlog.get_logger("jobwire.api")

router = APIRouter()


class Error(BaseModel):
    detail: str
    errors: list[dict[str, str]] = []


class TargetResultOut(BaseModel):
    target: str
    ok: bool
    error: str | None


class TestReport(BaseModel):
    ok: bool
    results: list[TargetResultOut]


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Error, "description": "No API key, or one nobody holds."},
    404: {"model": Error, "description": "No such subscription for this key."},
}
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"model": Error, "description": "Refused input; `errors` names each field."},
}


def _refused(problems: list[Problem]) -> JSONResponse:
    return JSONResponse(
        {
            "detail": "subscription refused: "
            + "; ".join(f"{p.field}: {p.message}" for p in problems),
            "errors": [asdict(p) for p in problems],
        },
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


class Unauthorized(Exception):
    pass


class TooMany(Exception):
    """A rate limit was reached: 429 with Retry-After."""

    def __init__(self, detail: str, wait_s: float) -> None:
        super().__init__(detail)
        self.wait_s = wait_s


_bearer = HTTPBearer(auto_error=False, description="An API key from `jobwire users add`.")


async def _caller(
    request: Request,
    ctx: Context,
    limits: Limits,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The user (or operator) whose key came with the request."""
    if credentials is None:
        raise Unauthorized("send your API key as 'Authorization: Bearer KEY'")
    address = client_address(request)
    # Refused before the key is looked at: answering a right key while refusing wrong ones
    # would still tell a guesser which key is right.
    wait = limits.failed_auth.wait(address)
    if wait:
        log.warning("api.auth_throttled", client=address)
        raise TooMany(
            "too many requests with a wrong API key from this address; try again later", wait
        )
    actor = await authenticate(ctx.store, credentials.credentials, ctx.operator_key)
    if actor is None:
        limits.failed_auth.take(address)
        raise Unauthorized("this API key is not valid; ask the operator for a new one")
    wait = limits.requests.take(actor.user_id or "operator")
    if wait:
        raise TooMany("too many requests with this API key; slow down", wait)
    return actor


Caller = Annotated[Actor, Depends(_caller)]


def add_error_handlers(app: FastAPI) -> None:
    """The API's errors as JSON. The pages catch what they raise themselves."""

    @app.exception_handler(TooMany)
    async def _too_many(_: Request, exc: TooMany) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=429, headers={"Retry-After": retry_after(exc.wait_s)}
        )

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _refused([problem_of(error) for error in exc.errors()])

    @app.exception_handler(SubscriptionRefused)
    async def _subscription_refused(_: Request, exc: SubscriptionRefused) -> JSONResponse:
        return _refused(exc.problems)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, __: NotFound) -> JSONResponse:
        return JSONResponse({"detail": "no such subscription"}, status_code=404)

    @app.exception_handler(LimitReached)
    async def _limit(_: Request, exc: LimitReached) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)


@router.post(
    "/subscriptions",
    status_code=201,
    responses={**ERRORS, **REFUSED, 409: {"model": Error, "description": "Limit reached."}},
    tags=["subscriptions"],
)
async def create_subscription(spec: SubscriptionIn, actor: Caller, ctx: Context) -> SubscriptionOut:
    """Subscribe: every field set must match, any value within a field may match."""
    created = await ctx.registry.create(actor, spec)
    log.info("subscription.created", subscription_id=created.id, user=actor.name)
    return created.public()


@router.get("/subscriptions", responses=ERRORS, tags=["subscriptions"])
async def list_subscriptions(actor: Caller, ctx: Context) -> list[SubscriptionOut]:
    """Your subscriptions (the operator's key: everyone's)."""
    return [sub.public() for sub in await ctx.registry.list_for(actor)]


@router.get("/subscriptions/{subscription_id}", responses=ERRORS, tags=["subscriptions"])
async def get_subscription(subscription_id: str, actor: Caller, ctx: Context) -> SubscriptionOut:
    return (await ctx.registry.get(actor, subscription_id)).public()


@router.patch(
    "/subscriptions/{subscription_id}", responses={**ERRORS, **REFUSED}, tags=["subscriptions"]
)
async def update_subscription(
    subscription_id: str, patch: SubscriptionPatch, actor: Caller, ctx: Context
) -> SubscriptionOut:
    """Change the fields sent; `{"active": false}` pauses, `{"active": true}` resumes."""
    updated = await ctx.registry.update(actor, subscription_id, patch)
    log.info("subscription.updated", subscription_id=subscription_id, user=actor.name)
    return updated.public()


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    responses=ERRORS,
    tags=["subscriptions"],
)
async def delete_subscription(subscription_id: str, actor: Caller, ctx: Context) -> Response:
    """Remove a subscription; alerts already recorded for it are still sent."""
    await ctx.registry.delete(actor, subscription_id)
    log.info("subscription.deleted", subscription_id=subscription_id, user=actor.name)
    return Response(status_code=204)


@router.post(
    "/subscriptions/{subscription_id}/test",
    responses={**ERRORS, 429: {"model": Error, "description": "Too many test alerts."}},
    tags=["subscriptions"],
)
async def test_subscription(
    subscription_id: str, actor: Caller, ctx: Context, limits: Limits
) -> TestReport:
    """Send one test alert to each target and say, per target, whether it arrived.

    A few a minute per user (`JOBWIRE_LIMITS__TESTS_PER_MINUTE`): each is a real message.
    """
    await ctx.registry.get(actor, subscription_id)  # a wrong id costs no test
    wait = limits.tests.take(actor.user_id or "operator")
    if wait:
        raise TooMany("too many test alerts; wait before sending another", wait)
    results = await ctx.registry.send_test(
        actor, subscription_id, ctx.notifier, ctx.links.url(subscription_id)
    )
    log.info(
        "subscription.tested",
        subscription_id=subscription_id,
        ok=sum(r.ok for r in results),
        failed=sum(not r.ok for r in results),
    )
    return TestReport(
        ok=all(r.ok for r in results),
        results=[TargetResultOut.model_validate(asdict(r)) for r in results],
    )


@router.get("/me/export", responses=ERRORS, tags=["your data"])
async def export_me(
    actor: Caller,
    ctx: Context,
    targets: Annotated[
        Literal["masked", "full"],
        Query(description="`full` shows your targets with their passwords and tokens."),
    ] = "masked",
) -> JSONResponse:
    """Everything jobwire keeps of you: your subscriptions and the alerts sent for them."""
    user = await _own_account(ctx, actor)
    return JSONResponse(await personal_data.export(ctx.store, user, targets == "full"))


@router.delete("/me", status_code=204, responses=ERRORS, tags=["your data"])
async def erase_me(actor: Caller, ctx: Context) -> Response:
    """Erase your account: your keys, your subscriptions and their targets, your alerts."""
    user = await _own_account(ctx, actor)
    await personal_data.erase(ctx.store, user.id)
    return Response(status_code=204)


@router.get("/healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], responses={503: {"description": "Not ready."}})
async def readyz(ctx: Context) -> JSONResponse:
    """Kafka and the store are reachable."""
    checks = {
        "kafka": "ok" if ctx.kafka_connected() else "not connected",
        "store": "ok" if await _store_reachable(ctx.store) else "unreachable",
    }
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(checks, status_code=200 if ready else 503)


async def _own_account(ctx: ApiContext, actor: Actor) -> User:
    """The caller's own account; the operator's key has none."""
    user = await ctx.store.accounts.by_id(actor.user_id) if actor.user_id else None
    if user is None:
        raise HTTPException(
            400,
            "the operator's key has no account of its own: export a user's data with "
            "`jobwire users export NAME`, erase it with `jobwire users remove NAME`",
        )
    return user


async def _store_reachable(store: Store) -> bool:
    try:
        await asyncio.wait_for(store.ping(), 2.0)
    except Exception:
        return False
    return True
