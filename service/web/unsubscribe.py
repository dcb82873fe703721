"""The unsubscribe link at the foot of every alert: a page that asks, and its button.

Opening the link (GET) only asks: link scanners and chat unfurlers open every link they see and
must not unsubscribe anyone. The button, or a mail client's one-click unsubscribe (RFC 8058, a
POST with `List-Unsubscribe=One-Click`), pauses the subscription. The signed link is the
authority (service/unsubscribe.py), so no login and no CSRF token: a mail client sends this POST
by itself, and a forger would need the link.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from service.web.context import ApiContext, Context
from service.web.templating import message

log = structlog.get_logger("jobwire.api")

router = APIRouter(tags=["unsubscribe"])

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe_page(token: str, request: Request, ctx: Context) -> HTMLResponse:
    """Ask whether to stop the alerts of the subscription an alert's signed link names.

    Only asks: link scanners and chat unfurlers open every link they see, and must not
    unsubscribe anyone. The page's button POSTs to the same address.
    """
    subscription_id = ctx.links.verify(token)
    if subscription_id is None:
        return _invalid_link(request, ctx)
    found = await ctx.store.subscriptions.get(subscription_id)
    if found is None:
        return _gone(request, ctx)
    what = f"“{found.name}”" if found.name else "this subscription"
    if not found.active:
        return message(request, ctx, "Unsubscribed", f"You get no alerts for {what}.")
    return message(
        request,
        ctx,
        "Unsubscribe?",
        f"Stop the alerts for {what}?",
        button="Unsubscribe",
        hidden=ONE_CLICK,
    )


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, request: Request, ctx: Context) -> HTMLResponse:
    """Pause the subscription an alert's signed link names; no login needed.

    The confirmation page's button and a mail client's one-click unsubscribe (RFC 8058,
    body `List-Unsubscribe=One-Click`) both come here.
    """
    subscription_id = ctx.links.verify(token)
    if subscription_id is None:
        return _invalid_link(request, ctx)
    found = await ctx.store.subscriptions.set_active(subscription_id, False)
    if found is None:
        return _gone(request, ctx)
    log.info("subscription.unsubscribed", subscription_id=found.id)
    what = f"“{found.name}”" if found.name else "this subscription"
    return message(
        request,
        ctx,
        "Unsubscribed",
        f"You will get no more alerts for {what}.",
        links=[("/sign-in", "Manage your alerts")],
    )


def _gone(request: Request, ctx: ApiContext) -> HTMLResponse:
    return message(
        request, ctx, "Already gone", "This subscription was deleted; it sends no more alerts."
    )


def _invalid_link(request: Request, ctx: ApiContext) -> HTMLResponse:
    return message(
        request,
        ctx,
        "Link not valid",
        "This unsubscribe link is not valid. Use the link from an alert as it is.",
        status_code=404,
    )
