"""The pages of a signed-in person: their alerts (pause, resume, edit, delete, a test alert,
targets, the last alerts sent and dead targets) and their API keys.

Every change goes through the registry, as the API's do: the same ownership, limits and target
policy, and targets shown masked (service/redaction.py) or, for jobwire's own email, as the
address. Each action is a POST with the page's CSRF token, answered with a redirect to the
page (so reloading does not repeat it), except those that show something once: a new API key
and a test alert's results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from consumers.events import Event, has_control_characters
from service.accounts import key_hash, new_api_key
from service.own_mail import own_mail_address, own_mail_target
from service.redaction import mask
from service.registry import (
    LimitReached,
    NotFound,
    SubscriptionRefused,
    TargetResult,
    problem_of,
)
from service.store import User
from service.store.api_keys import KeyLimitReached
from service.subscriptions import Subscription, SubscriptionIn, SubscriptionPatch
from service.web.context import ApiContext, Context, Limits
from service.web.forms import SubscriptionForm, in_words
from service.web.pages import CheckedForm, TooManyPage, preview_of
from service.web.sessions import Viewer, actor_of
from service.web.templating import DONE, message, page

log = structlog.get_logger("jobwire.web")

router = APIRouter(include_in_schema=False)

RECENT_ALERTS = 20


def shown_target(url: str) -> str:
    """A target as its owner sees it: jobwire's own email as the address, others masked."""
    address = own_mail_address(url)
    return f"Email to {address}" if address else mask(url)


@dataclass(frozen=True)
class AlertRow:
    """One line of "the last alerts sent"."""

    when: datetime
    subscription: str
    what: str
    target: str
    status: str
    error: str | None


@dataclass(frozen=True)
class DeadTarget:
    subscription: str
    target: str
    since: datetime
    reason: str


def _what(event: Event | None, kind: str, event_id: str) -> str:
    if event is None:
        return f"{kind} {event_id}"
    if event.kind == "posting":
        return f"{event.title} at {event.employer}, {event.city}"
    return event.headline


async def _overview(ctx: ApiContext, user: User) -> dict[str, Any]:
    subs = await ctx.registry.list_for(actor_of(user))
    names = {sub.id: sub.name or "(no name)" for sub in subs}
    rows = await ctx.store.ledger.recent(owner=user.id, limit=RECENT_ALERTS)
    events = await ctx.store.events.some([(r.event_kind, r.event_id) for r in rows])

    alerts = [
        AlertRow(
            when=row.sent_at or row.created_at,
            subscription=names.get(row.subscription_id, "(deleted)"),
            what=_what(events.get((row.event_kind, row.event_id)), row.event_kind, row.event_id),
            target=shown_target(row.target),
            status=row.status,
            error=row.shown_error,
        )
        for row in rows
    ]
    # The one rule for a dead target (the store's, as jobwire status and the meta-alerts
    # use it): its newest finished alert is dead; once one gets through it is alive again.
    dead_targets = [
        DeadTarget(
            subscription=names.get(dead.subscription_id, ""),
            target=shown_target(dead.target),
            since=dead.since,
            reason=dead.shown_error or "it failed every attempt",
        )
        for dead in await ctx.store.target_state.dead(owner=user.id)
    ]
    return {
        "subs": [_card(sub) for sub in subs],
        "alerts": alerts,
        "dead_targets": dead_targets,
        "keys": await ctx.store.api_keys.of(user.id),
        "max_keys": ctx.registry.limits.api_keys_per_user,
    }


def _card(sub: Subscription) -> dict[str, Any]:
    public = sub.public()
    return {
        "id": sub.id,
        "name": sub.name or "(no name)",
        "active": sub.active,
        "employers": public.employers,
        "titles": public.titles,
        "cities": public.cities,
        "exclude": public.exclude,
        "kinds": public.kinds,
        "schedule": public.schedule,
        "targets": [shown_target(url) for url in sub.notify],
    }


async def _manage_page(
    request: Request, ctx: ApiContext, user: User, status_code: int = 200, **extra: Any
) -> HTMLResponse:
    values: dict[str, Any] = {
        "new_key": None,
        "key_error": None,
        "done": DONE.get(request.query_params.get("done", "")),
        **extra,
    }
    return page(
        request,
        ctx,
        "manage.html",
        status_code,
        title="Your alerts",
        user=user,
        **(await _overview(ctx, user)),
        **values,
    )


@router.get("/manage", response_class=HTMLResponse)
async def manage(request: Request, ctx: Context, user: Viewer) -> Response:
    return await _manage_page(request, ctx, user)


def _back(done: str, subscription_id: str | None = None) -> RedirectResponse:
    where = f"/manage/subscriptions/{subscription_id}" if subscription_id else "/manage"
    return RedirectResponse(f"{where}?done={done}", status_code=303)


# -- one subscription -------------------------------------------------------------------------


async def _edit_page(
    request: Request,
    ctx: ApiContext,
    user: User,
    sub: Subscription | None,
    form: SubscriptionForm,
    status_code: int = 200,
    **extra: Any,
) -> HTMLResponse:
    values: dict[str, Any] = {
        "target_error": None,
        "new_target": "",
        "tested": None,
        "done": DONE.get(request.query_params.get("done", "")),
        **extra,
    }
    targets = []
    if sub is not None:
        targets = [(position, shown_target(url)) for position, url in enumerate(sub.notify)]
    has_own_mail = sub is not None and any(own_mail_address(u) for u in sub.notify)
    return page(
        request,
        ctx,
        "edit.html",
        status_code,
        title=f"Edit “{sub.name}”" if sub else "New alert",
        user=user,
        sub=sub,
        form=form,
        errors=form.ordered_errors(),
        targets=targets,
        can_add_own_mail=bool(sub and user.email and not has_own_mail and ctx.mail),
        script=True,
        **await preview_of(ctx, form),
        **values,
    )


async def _own(ctx: ApiContext, user: User, subscription_id: str) -> Subscription:
    return await ctx.registry.get(actor_of(user), subscription_id)


def _not_found(request: Request, ctx: ApiContext, user: User) -> HTMLResponse:
    return message(
        request,
        ctx,
        "No such alert",
        "This alert does not exist, or it is not yours. It may have been deleted.",
        status_code=404,
        user=user,
        links=[("/manage", "Back to your alerts")],
    )


@router.get("/manage/new", response_class=HTMLResponse)
async def new_page(request: Request, ctx: Context, user: Viewer) -> Response:
    return await _edit_page(request, ctx, user, None, SubscriptionForm.blank())


@router.post("/manage/new", response_class=HTMLResponse)
async def create(request: Request, ctx: Context, user: Viewer, form: CheckedForm) -> Response:
    typed = SubscriptionForm.read(form, ctx.registry.limits.values_per_field)
    if not user.email:
        return await _edit_page(
            request,
            ctx,
            user,
            None,
            typed,
            409,
            target_error="Your account has no confirmed email address to send alerts to.",
        )
    if not typed.errors:
        try:
            spec = SubscriptionIn.model_validate(
                {**typed.fields(), "notify": [own_mail_target(user.email)]}
            )
            created = await ctx.registry.create(actor_of(user), spec)
        except ValidationError as exc:
            typed.add_problems(problem_of(error) for error in exc.errors())
        except SubscriptionRefused as exc:
            typed.add_problems(exc.problems)
        except LimitReached as exc:
            typed.errors["name"] = f"{str(exc)[:1].upper()}{str(exc)[1:]}."
        else:
            log.info("web.subscription_created", subscription_id=created.id, user_id=user.id)
            return _back("created")
    return await _edit_page(request, ctx, user, None, typed, 422)


@router.get("/manage/subscriptions/{subscription_id}", response_class=HTMLResponse)
async def edit_page(subscription_id: str, request: Request, ctx: Context, user: Viewer) -> Response:
    try:
        sub = await _own(ctx, user, subscription_id)
    except NotFound:
        return _not_found(request, ctx, user)
    return await _edit_page(request, ctx, user, sub, SubscriptionForm.of(sub))


async def _update(
    request: Request,
    ctx: ApiContext,
    user: User,
    subscription_id: str,
    patch: dict[str, Any],
    done: str,
    form: SubscriptionForm | None = None,
    back_to_list: bool = True,
    new_target: str = "",
) -> Response:
    """Apply a change through the registry; refusals go back to the edit page, by field."""
    try:
        sub = await _own(ctx, user, subscription_id)
        await ctx.registry.update(actor_of(user), subscription_id, SubscriptionPatch(**patch))
    except NotFound:
        return _not_found(request, ctx, user)
    except SubscriptionRefused as exc:
        shown = form or SubscriptionForm.of(sub)
        target_error = None
        for problem in exc.problems:
            name, said = in_words(problem)
            if name == "notify":
                target_error = said
            else:
                shown.errors.setdefault(name, said)
        return await _edit_page(
            request, ctx, user, sub, shown, 422, target_error=target_error, new_target=new_target
        )
    log.info("web.subscription_changed", subscription_id=subscription_id, change=done)
    return _back(done, None if back_to_list else subscription_id)


@router.post("/manage/subscriptions/{subscription_id}", response_class=HTMLResponse)
async def save(
    subscription_id: str, request: Request, ctx: Context, user: Viewer, form: CheckedForm
) -> Response:
    typed = SubscriptionForm.read(form, ctx.registry.limits.values_per_field)
    if typed.errors:
        try:
            sub = await _own(ctx, user, subscription_id)
        except NotFound:
            return _not_found(request, ctx, user)
        return await _edit_page(request, ctx, user, sub, typed, 422)
    return await _update(request, ctx, user, subscription_id, typed.fields(), "saved", typed)


@router.post("/manage/subscriptions/{subscription_id}/pause", response_class=HTMLResponse)
async def pause(
    subscription_id: str, request: Request, ctx: Context, user: Viewer, _: CheckedForm
) -> Response:
    return await _update(request, ctx, user, subscription_id, {"active": False}, "paused")


@router.post("/manage/subscriptions/{subscription_id}/resume", response_class=HTMLResponse)
async def resume(
    subscription_id: str, request: Request, ctx: Context, user: Viewer, _: CheckedForm
) -> Response:
    return await _update(request, ctx, user, subscription_id, {"active": True}, "resumed")


@router.post("/manage/subscriptions/{subscription_id}/delete", response_class=HTMLResponse)
async def delete(
    subscription_id: str, request: Request, ctx: Context, user: Viewer, _: CheckedForm
) -> Response:
    try:
        await ctx.registry.delete(actor_of(user), subscription_id)
    except NotFound:
        return _not_found(request, ctx, user)
    log.info("web.subscription_deleted", subscription_id=subscription_id, user_id=user.id)
    return _back("deleted")


@router.post("/manage/subscriptions/{subscription_id}/targets", response_class=HTMLResponse)
async def add_target(
    subscription_id: str, request: Request, ctx: Context, user: Viewer, form: CheckedForm
) -> Response:
    """Add a chat or webhook target (any Apprise URL the target policy allows), or the
    user's own confirmed address by jobwire's email."""
    try:
        sub = await _own(ctx, user, subscription_id)
    except NotFound:
        return _not_found(request, ctx, user)
    if form.one("own_mail") and user.email:
        url = own_mail_target(user.email)
    else:
        url = form.one("notify")
        if not url:
            return await _edit_page(
                request,
                ctx,
                user,
                sub,
                SubscriptionForm.of(sub),
                422,
                target_error="Paste the Apprise URL of a chat or webhook, e.g. "
                "slack://TokenA/TokenB/TokenC/#jobs.",
            )
    return await _update(
        request,
        ctx,
        user,
        subscription_id,
        {"notify": [*sub.notify, url]},
        "target-added",
        back_to_list=False,
        new_target="" if form.one("own_mail") else url,
    )


@router.post("/manage/subscriptions/{subscription_id}/targets/remove", response_class=HTMLResponse)
async def remove_target(
    subscription_id: str, request: Request, ctx: Context, user: Viewer, form: CheckedForm
) -> Response:
    try:
        sub = await _own(ctx, user, subscription_id)
    except NotFound:
        return _not_found(request, ctx, user)
    position = form.one("position")
    if not position.isdigit() or int(position) >= len(sub.notify):
        return _back("saved", subscription_id)  # already gone (a second click)
    if len(sub.notify) == 1:
        return await _edit_page(
            request,
            ctx,
            user,
            sub,
            SubscriptionForm.of(sub),
            422,
            target_error="An alert needs somewhere to go: add another place before removing "
            "this one, or delete the alert.",
        )
    kept = [url for n, url in enumerate(sub.notify) if n != int(position)]
    return await _update(
        request,
        ctx,
        user,
        subscription_id,
        {"notify": kept},
        "target-removed",
        back_to_list=False,
    )


@router.post("/manage/subscriptions/{subscription_id}/test", response_class=HTMLResponse)
async def send_test(
    subscription_id: str,
    request: Request,
    ctx: Context,
    limits: Limits,
    user: Viewer,
    _: CheckedForm,
) -> Response:
    """Send a test alert to each target and show, per target, whether it arrived."""
    try:
        sub = await _own(ctx, user, subscription_id)
    except NotFound:
        return _not_found(request, ctx, user)
    wait = limits.tests.take(user.id)
    if wait:
        raise TooManyPage("Test alerts are real messages, so only a few go out a minute.", wait)
    results: list[TargetResult] = await ctx.registry.send_test(
        actor_of(user), subscription_id, ctx.notifier, ctx.links.url(subscription_id)
    )
    shown = {mask(url): shown_target(url) for url in sub.notify}
    tested = [(shown.get(r.target, r.target), r.ok, r.error) for r in results]
    log.info("web.subscription_tested", subscription_id=subscription_id)
    return await _edit_page(request, ctx, user, sub, SubscriptionForm.of(sub), tested=tested)


# -- API keys ---------------------------------------------------------------------------------


@router.post("/manage/keys", response_class=HTMLResponse)
async def create_key(request: Request, ctx: Context, user: Viewer, form: CheckedForm) -> Response:
    label = form.one("label")[:100] or "made on the web page"
    if has_control_characters(label):
        return await _manage_page(
            request, ctx, user, 422, key_error="Use letters, digits and spaces in the name."
        )
    key = new_api_key()
    try:
        await ctx.store.api_keys.add(
            user.id, key_hash(key), label, ctx.registry.limits.api_keys_per_user
        )
    except KeyLimitReached:
        return await _manage_page(
            request,
            ctx,
            user,
            409,
            key_error=f"You hold {ctx.registry.limits.api_keys_per_user} keys, the most "
            "allowed: revoke one you no longer use first.",
        )
    log.info("web.api_key_created", user_id=user.id)
    # Shown once, in this answer only (never in an address; the page is not cached).
    return await _manage_page(request, ctx, user, 201, new_key=key)


@router.post("/manage/keys/{key_id}/revoke", response_class=HTMLResponse)
async def revoke_key(
    key_id: str, request: Request, ctx: Context, user: Viewer, _: CheckedForm
) -> Response:
    if key_id.isdigit() and len(key_id) < 12:
        await ctx.store.api_keys.revoke(user.id, int(key_id))
    log.info("web.api_key_revoked", user_id=user.id, key_id=key_id)
    return _back("key-revoked")
