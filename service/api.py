"""The subscriptions API: FastAPI over the registry, served by uvicorn inside `jobwire run`.

Every error is JSON with a `detail` sentence and, for refused input, the fields at fault.
Nothing a user sends is echoed back in an error, because a notify URL may hold a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

import structlog
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import LimitSettings
from service import personal_data
from service.accounts import Actor, authenticate
from service.delivery import Notifier
from service.rate_limits import RateLimit, retry_after
from service.registry import (
    LimitReached,
    NotFound,
    Problem,
    SubscriptionRefused,
    SubscriptionRegistry,
    problem_of,
)
from service.store import Store, User
from service.subscriptions import SubscriptionIn, SubscriptionOut, SubscriptionPatch
from service.unsubscribe import UnsubscribeLinks

log = structlog.get_logger("jobwire.api")


class ApiUnavailable(Exception):
    """The API cannot listen; the message says which setting to change."""


@dataclass(frozen=True)
class ApiContext:
    """What the API needs from the running service."""

    store: Store
    registry: SubscriptionRegistry
    links: UnsubscribeLinks
    notifier: Notifier
    operator_key: str | None
    kafka_connected: Callable[[], bool]


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


MAX_BODY_BYTES = 256 * 1024

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


class _Unauthorized(Exception):
    pass


class _TooMany(Exception):
    """A rate limit was reached: 429 with Retry-After."""

    def __init__(self, detail: str, wait_s: float) -> None:
        super().__init__(detail)
        self.wait_s = wait_s


@dataclass(frozen=True)
class _RateLimits:
    """Per instance (see service/rate_limits.py)."""

    failed_auth: RateLimit  # per client address: wrong keys
    requests: RateLimit  # per key
    tests: RateLimit  # per user: test alerts are real messages to real people


_bearer = HTTPBearer(auto_error=False, description="An API key from `jobwire users add`.")


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The user (or operator) whose key came with the request."""
    if credentials is None:
        raise _Unauthorized("send your API key as 'Authorization: Bearer KEY'")
    ctx: ApiContext = request.app.state.ctx
    limits: _RateLimits = request.app.state.rate_limits
    address = request.client.host if request.client else "unknown"
    # Refused before the key is looked at: answering a right key while refusing wrong ones
    # would still tell a guesser which key is right.
    wait = limits.failed_auth.wait(address)
    if wait:
        log.warning("api.auth_throttled", client=address)
        raise _TooMany(
            "too many requests with a wrong API key from this address; try again later", wait
        )
    actor = await authenticate(ctx.store, credentials.credentials, ctx.operator_key)
    if actor is None:
        limits.failed_auth.take(address)
        raise _Unauthorized("this API key is not valid; ask the operator for a new one")
    wait = limits.requests.take(actor.user_id or "operator")
    if wait:
        raise _TooMany("too many requests with this API key; slow down", wait)
    return actor


Caller = Annotated[Actor, Depends(_caller)]


def create_api(ctx: ApiContext) -> FastAPI:
    api = FastAPI(
        title="jobwire",
        summary="Alerts for new job postings and articles, by email and chat.",
        description="Authenticate with `Authorization: Bearer KEY`; an operator creates keys "
        "with `jobwire users add NAME`. Notify URLs are Apprise URLs and are always shown "
        "with their passwords and tokens masked.",
    )
    api.state.ctx = ctx
    # No context: building the OpenAPI document only (tests/test_api_fuzz.py).
    limits = ctx.registry.limits if ctx is not None else LimitSettings()
    api.state.rate_limits = _RateLimits(
        failed_auth=RateLimit(limits.failed_auth_per_minute),
        requests=RateLimit(limits.requests_per_minute),
        tests=RateLimit(limits.tests_per_minute),
    )
    # Outermost, so it counts the bytes of every request before anything reads them.
    api.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    @api.exception_handler(_TooMany)
    async def _too_many(_: Request, exc: _TooMany) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=429, headers={"Retry-After": retry_after(exc.wait_s)}
        )

    @api.exception_handler(_Unauthorized)
    async def _unauthorized(_: Request, exc: _Unauthorized) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _refused([problem_of(error) for error in exc.errors()])

    @api.exception_handler(SubscriptionRefused)
    async def _subscription_refused(_: Request, exc: SubscriptionRefused) -> JSONResponse:
        return _refused(exc.problems)

    @api.exception_handler(NotFound)
    async def _not_found(_: Request, __: NotFound) -> JSONResponse:
        return JSONResponse({"detail": "no such subscription"}, status_code=404)

    @api.exception_handler(LimitReached)
    async def _limit(_: Request, exc: LimitReached) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @api.middleware("http")
    async def _log_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # The route's template, not the path: an unsubscribe path holds a token.
        route = getattr(request.scope.get("route"), "path", "(no route)")
        log.info(
            "api.request",
            method=request.method,
            route=route,
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    @api.post(
        "/subscriptions",
        status_code=201,
        responses={**ERRORS, **REFUSED, 409: {"model": Error, "description": "Limit reached."}},
        tags=["subscriptions"],
    )
    async def create_subscription(spec: SubscriptionIn, actor: Caller) -> SubscriptionOut:
        """Subscribe: every field set must match, any value within a field may match."""
        created = await ctx.registry.create(actor, spec)
        log.info("subscription.created", subscription_id=created.id, user=actor.name)
        return created.public()

    @api.get("/subscriptions", responses=ERRORS, tags=["subscriptions"])
    async def list_subscriptions(actor: Caller) -> list[SubscriptionOut]:
        """Your subscriptions (the operator's key: everyone's)."""
        return [sub.public() for sub in await ctx.registry.list_for(actor)]

    @api.get("/subscriptions/{subscription_id}", responses=ERRORS, tags=["subscriptions"])
    async def get_subscription(subscription_id: str, actor: Caller) -> SubscriptionOut:
        return (await ctx.registry.get(actor, subscription_id)).public()

    @api.patch(
        "/subscriptions/{subscription_id}", responses={**ERRORS, **REFUSED}, tags=["subscriptions"]
    )
    async def update_subscription(
        subscription_id: str, patch: SubscriptionPatch, actor: Caller
    ) -> SubscriptionOut:
        """Change the fields sent; `{"active": false}` pauses, `{"active": true}` resumes."""
        updated = await ctx.registry.update(actor, subscription_id, patch)
        log.info("subscription.updated", subscription_id=subscription_id, user=actor.name)
        return updated.public()

    @api.delete(
        "/subscriptions/{subscription_id}",
        status_code=204,
        responses=ERRORS,
        tags=["subscriptions"],
    )
    async def delete_subscription(subscription_id: str, actor: Caller) -> Response:
        """Remove a subscription; alerts already recorded for it are still sent."""
        await ctx.registry.delete(actor, subscription_id)
        log.info("subscription.deleted", subscription_id=subscription_id, user=actor.name)
        return Response(status_code=204)

    @api.post(
        "/subscriptions/{subscription_id}/test",
        responses={**ERRORS, 429: {"model": Error, "description": "Too many test alerts."}},
        tags=["subscriptions"],
    )
    async def test_subscription(subscription_id: str, actor: Caller) -> TestReport:
        """Send one test alert to each target and say, per target, whether it arrived.

        A few a minute per user (`JOBWIRE_LIMITS__TESTS_PER_MINUTE`): each is a real message.
        """
        await ctx.registry.get(actor, subscription_id)  # a wrong id costs no test
        wait = api.state.rate_limits.tests.take(actor.user_id or "operator")
        if wait:
            raise _TooMany("too many test alerts; wait before sending another", wait)
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

    @api.get("/me/export", responses=ERRORS, tags=["your data"])
    async def export_me(
        actor: Caller,
        targets: Annotated[
            Literal["masked", "full"],
            Query(description="`full` shows your targets with their passwords and tokens."),
        ] = "masked",
    ) -> JSONResponse:
        """Everything jobwire keeps of you: your subscriptions and the alerts sent for them."""
        user = await _own_account(ctx, actor)
        return JSONResponse(await personal_data.export(ctx.store, user, targets == "full"))

    @api.delete("/me", status_code=204, responses=ERRORS, tags=["your data"])
    async def erase_me(actor: Caller) -> Response:
        """Erase your account: your key, your subscriptions and their targets, your alerts."""
        user = await _own_account(ctx, actor)
        await personal_data.erase(ctx.store, user.id)
        return Response(status_code=204)

    @api.get("/unsubscribe/{token}", response_class=HTMLResponse, tags=["unsubscribe"])
    async def unsubscribe_page(token: str) -> HTMLResponse:
        """Ask whether to stop the alerts of the subscription an alert's signed link names.

        Only asks: link scanners and chat unfurlers open every link they see, and must not
        unsubscribe anyone. The page's button POSTs to the same address.
        """
        subscription_id = ctx.links.verify(token)
        if subscription_id is None:
            return _invalid_link()
        found = await ctx.store.subscriptions.get(subscription_id)
        if found is None:
            return _page("Already gone", "This subscription was deleted; it sends no more alerts.")
        what = f"“{found.name}”" if found.name else "this subscription"
        if not found.active:
            return _page("Unsubscribed", f"You get no alerts for {what}.")
        return _page(
            "Unsubscribe?",
            f"Stop the alerts for {what}?",
            form=(
                "<form method=post>"
                "<input type=hidden name=List-Unsubscribe value=One-Click>"
                "<button type=submit>Unsubscribe</button></form>"
            ),
        )

    @api.post("/unsubscribe/{token}", response_class=HTMLResponse, tags=["unsubscribe"])
    async def unsubscribe(token: str) -> HTMLResponse:
        """Pause the subscription an alert's signed link names; no login needed.

        The confirmation page's button and a mail client's one-click unsubscribe (RFC 8058,
        body `List-Unsubscribe=One-Click`) both come here.
        """
        subscription_id = ctx.links.verify(token)
        if subscription_id is None:
            return _invalid_link()
        found = await ctx.store.subscriptions.set_active(subscription_id, False)
        if found is None:
            return _page("Already gone", "This subscription was deleted; it sends no more alerts.")
        log.info("subscription.unsubscribed", subscription_id=found.id)
        what = f"“{found.name}”" if found.name else "this subscription"
        return _page("Unsubscribed", f"You will get no more alerts for {what}.")

    @api.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @api.get("/readyz", tags=["operations"], responses={503: {"description": "Not ready."}})
    async def readyz() -> JSONResponse:
        """Kafka and the store are reachable."""
        checks = {
            "kafka": "ok" if ctx.kafka_connected() else "not connected",
            "store": "ok" if await _store_reachable(ctx.store) else "unreachable",
        }
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(checks, status_code=200 if ready else 503)

    return api


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


def _page(title: str, text: str, status_code: int = 200, form: str = "") -> HTMLResponse:
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=robots content=noindex>"
        f"<title>jobwire: {html.escape(title)}</title>"
        "<body style='font-family:sans-serif;max-width:36em;margin:4em auto'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{form}</body></html>"
    )
    # No caching and no referrer: the page's address holds the token.
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(body, status_code=status_code, headers=headers)


def _invalid_link() -> HTMLResponse:
    return _page(
        "Link not valid",
        "This unsubscribe link is not valid. Use the link from an alert as it is.",
        status_code=404,
    )


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, counting the bytes as they arrive.

    Content-Length alone is not enough: a chunked request has none, and FastAPI reads a body
    before it checks the API key, so 100 MB sent unauthenticated was read whole (the process
    grew from 115 MB to 422 MB). A pure ASGI middleware, so nothing buffers the body first.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI passes an HTTPException raised while it reads the body on as it
                    # is (any other exception would become a 400).
                    raise HTTPException(413, self._detail())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._refuse(send)

    def _detail(self) -> str:
        return f"the body must be at most {self.max_bytes // 1024} KiB"

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse({"detail": self._detail()}, status_code=413)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [*response.raw_headers, (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": response.body})


def bind(host: str, port: int) -> socket.socket:
    """Listen now, so a taken port stops start-up with a clear message."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. Without it a keep-alive client waits out Nagle and
    # delayed ACK on every request after the first: 44 ms instead of 1 ms (bench/bench_api.py).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ApiUnavailable(
            f"the API cannot listen on {host}:{port} ({exc.strerror}); set JOBWIRE_API__PORT "
            "to a free port, or JOBWIRE_API__ENABLED=false to run without the API"
        ) from None
    sock.listen(128)
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # jobwire's own handlers stop every part in order; uvicorn's would replace them.
        yield


async def serve(api: FastAPI, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve until `stop` is set, then finish the requests in progress."""
    config = uvicorn.Config(
        api, log_config=None, access_log=False, lifespan="off", server_header=False
    )
    server = _Server(config)

    async def stop_when_asked() -> None:
        await stop.wait()
        server.should_exit = True

    stopper = asyncio.create_task(stop_when_asked())
    try:
        await server.serve(sockets=[sock])
    finally:
        stopper.cancel()
        sock.close()
