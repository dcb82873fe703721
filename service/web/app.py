"""The web app `jobwire run` serves: the subscriptions API, the subscribers' pages, the
unsubscribe links, and the pages' stylesheet and script.

Routes live at module level in their modules (api.py, pages.py, manage.py, unsubscribe.py) and
reach the running service through `request.app.state` (context.py); this module only puts them
together.
"""

from __future__ import annotations

import structlog
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from config.settings import LimitSettings
from service.web import api, manage, pages, unsubscribe
from service.web.context import ApiContext, RateLimits
from service.web.server import MAX_BODY_BYTES, BodyLimit, on_each_answer
from service.web.templating import STATIC

log = structlog.get_logger("jobwire.api")


def _log_answer(route: str, method: str, status: int, seconds: float) -> None:
    log.info("api.request", method=method, route=route, status=status, ms=round(seconds * 1000, 1))


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
    # Before anything that reads a body, so it counts the bytes of every request first.
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    api.add_error_handlers(app)
    pages.add_page_handlers(app)

    on_each_answer(app, _log_answer)  # after the body limit: its 413s are logged too
    app.include_router(api.router)
    app.include_router(unsubscribe.router)
    if ctx is None or ctx.web.enabled:
        app.include_router(pages.router)
        app.include_router(manage.router)
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
