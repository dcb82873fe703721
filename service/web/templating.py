"""Rendering the pages: Jinja2 templates with autoescaping on, and the headers every page gets.

Everything a person typed, and every event's text, is escaped where it lands in the page:
autoescape is on for every template and nothing is marked safe. The Content-Security-Policy
allows scripts and styles from this server only (no inline script), so even a mistake in
escaping would not run a script.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from service.web import csrf
from service.web.context import ApiContext
from service.web.forms import LABELS

HERE = Path(__file__).parent
STATIC = HERE / "static"

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _version(name: str) -> str:
    """A short hash of a static file, so browsers fetch it again after it changed."""
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]


def event_link(url: str | None) -> str | None:
    """An event's link if it is a web address: a `javascript:` one would run when clicked."""
    return url if url and url.lower().startswith(("https://", "http://")) else None


# What the page says after an action, by the `done` code in its address: fixed words only, so
# an address cannot make the page say anything else.
DONE = {
    "confirmed": "Your alert is on. Alerts come by email; each has a link to stop them.",
    "signed-in": "You are signed in.",
    "signed-out": "You are signed out.",
    "created": "Your new alert is on.",
    "saved": "Saved.",
    "paused": "Paused: no alerts until you resume it.",
    "resumed": "Resumed: alerts come again.",
    "deleted": "Deleted.",
    "target-added": "Added: alerts go there too now.",
    "target-removed": "Removed: no more alerts go there.",
    "key-revoked": "The key is revoked: it works no more.",
}

_env.filters["event_link"] = event_link
_env.globals.update(
    labels=LABELS,
    style_version=_version("style.css"),
    script_version=_version("page.js"),
)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Page addresses may hold a token (confirm, sign-in, unsubscribe links): never pass them on.
    "Referrer-Policy": "no-referrer",
    # Pages show personal data and one-time things (a new API key): nothing keeps a copy.
    "Cache-Control": "no-store",
}


def render(name: str, **values: Any) -> str:
    return _env.get_template(name).render(**values)


def page(
    request: Request,
    ctx: ApiContext,
    template: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """A whole page: the template with a CSRF token for its forms and the security headers."""
    token, fresh = csrf.issue(request, ctx)
    values.setdefault("user", None)
    values.setdefault("done", None)
    body = render(template, csrf=token, mail_on=ctx.mail is not None, **values)
    response = HTMLResponse(body, status_code, headers={**SECURITY_HEADERS, **(headers or {})})
    csrf.remember(response, request, ctx, fresh)
    return response


def fragment(template: str, **values: Any) -> HTMLResponse:
    """A part of a page, for the live preview."""
    return HTMLResponse(render(template, **values), headers=SECURITY_HEADERS)


def message(
    request: Request,
    ctx: ApiContext,
    title: str,
    text: str,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    """A page that says one thing (and may offer one button, posting `hidden` back)."""
    values.setdefault("button", None)
    values.setdefault("hidden", {})
    values.setdefault("links", [])
    return page(request, ctx, "message.html", status_code, title=title, text=text, **values)
