"""Cross-site request forgery: every form the pages send carries a token another site cannot
know, and every POST of a page must bring it back.

The token is an HMAC, under the service's web secret, of a value only this browser holds in an
HttpOnly cookie: its session token once signed in, else a random `jobwire_csrf` cookie set with
the first form (a signed double-submit cookie, as OWASP describes it). Another site can make a
browser POST, but cannot read the cookie or the page, so it cannot compute the token; the
SameSite=Lax cookies stop most such POSTs already, and this holds where they do not.

The one POST without it is unsubscribing from an alert's signed link, which a mail client sends
by itself (RFC 8058): the link is the authority there, and a forger would need it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from fastapi import Request, Response

from service.web.context import ApiContext
from service.web.sessions import cookie_name, over_https, session_token, set_cookie

CSRF = "jobwire_csrf"
FIELD = "csrf"


class CsrfRefused(Exception):
    """A page's POST without the right token: 403, reload the page."""


def _mac(secret: bytes, binding: str) -> str:
    digest = hmac.new(secret, b"csrf:" + binding.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _binding(request: Request, ctx: ApiContext) -> str | None:
    return session_token(request, ctx) or request.cookies.get(
        cookie_name(CSRF, over_https(request, ctx))
    )


def issue(request: Request, ctx: ApiContext) -> tuple[str, str | None]:
    """The token for this browser's forms, and a new cookie value to set if it has none."""
    binding = _binding(request, ctx)
    if binding:
        return _mac(ctx.secret, binding), None
    fresh = secrets.token_urlsafe(32)
    return _mac(ctx.secret, fresh), fresh


def remember(response: Response, request: Request, ctx: ApiContext, fresh: str | None) -> None:
    if fresh is not None:
        set_cookie(response, CSRF, fresh, over_https(request, ctx))


def check(request: Request, ctx: ApiContext, submitted: str) -> None:
    binding = _binding(request, ctx)
    if not binding or not submitted:
        raise CsrfRefused()
    if not hmac.compare_digest(_mac(ctx.secret, binding).encode(), submitted.encode()):
        raise CsrfRefused()
