"""The web app `jobwire run` serves: the subscriptions API, the subscribers' pages, the
unsubscribe links, and the pages' stylesheet and script.

Routes live at module level in their modules (api.py, pages.py, manage.py, unsubscribe.py) and
reach the running service through `request.app.state` (context.py); this module only puts them
together.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from config.settings import LimitSettings
from service.web import api, manage, pages, unsubscribe
from service.web.context import ApiContext, RateLimits
from service.web.server import MAX_BODY_BYTES, BodyLimit
from service.web.templating import STATIC

log = structlog.get_logger("jobwire.api")


def create_api(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="jobwire",
        summary="Alerts for new job postings and articles, by email and chat.",
        description="Authenticate with `Authorization: Bearer KEY`; an operator creates keys "
        "with `jobwire users add NAME`, and people who signed up on the web page make their "
        "own there. Notify URLs are Apprise URLs and are always shown with their passwords "
        "and tokens masked.",
    )
    app.state.ctx = ctx
    # No context: building the OpenAPI document only (tests/test_api_fuzz.py).
    limits = ctx.registry.limits if ctx is not None else LimitSettings()
    app.state.rate_limits = RateLimits.from_settings(limits)
    # Outermost, so it counts the bytes of every request before anything reads them.
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    api.add_error_handlers(app)
    pages.add_page_handlers(app)

    @app.middleware("http")
    async def _log_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # The route's template, not the path: unsubscribe and sign-in paths hold tokens.
        route = getattr(request.scope.get("route"), "path", "(no route)")
        log.info(
            "api.request",
            method=request.method,
            route=route,
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    app.include_router(api.router)
    app.include_router(unsubscribe.router)
    if ctx is None or ctx.web.enabled:
        app.include_router(pages.router)
        app.include_router(manage.router)
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
