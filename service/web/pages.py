"""The subscriber's front door: sign up with a live preview, confirm by email, sign in by an
emailed link, sign out. The pages for signed-in people are in manage.py.

Double opt-in: a sign-up stores what was asked with a link token and emails the link; only
opening it (and pressing its button) makes the subscription. The answer to a sign-up and to
"email me a link" is the same page whoever asks, sent before anything about the address is
looked up (mails.py), so neither tells whether an address has an account.

Links in emails only ask when opened (GET) and act on their button (POST): mail scanners open
every link they see, and must neither confirm a sign-up nor use up a single-use sign-in link.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from service.own_mail import own_mail_target
from service.preview import recent_matches
from service.registry import LimitReached, SubscriptionRefused, problem_of
from service.store import utcnow
from service.subscriptions import ALL_KINDS, Criteria, SubscriptionIn
from service.web import csrf, sessions
from service.web.context import ApiContext, Context, Limits, RateLimits, client_address
from service.web.forms import Form, FormError, SubscriptionForm, email_address, read_form
from service.web.mails import confirm_message, no_account_message, sign_in_message
from service.web.rate_limits import retry_after
from service.web.sessions import MaybeViewer, SignInNeeded, actor_of
from service.web.templating import DONE, fragment, message, page

log = structlog.get_logger("jobwire.web")

router = APIRouter(include_in_schema=False)

# Events the preview lists; the count says how many matched in all.
PREVIEW_SHOWN = 50


class TooManyPage(Exception):
    """A page's rate limit was reached: a 429 page that says how long to wait."""

    def __init__(self, text: str, wait_s: float) -> None:
        super().__init__(text)
        self.wait_s = wait_s


async def _checked_form(request: Request, ctx: Context) -> Form:
    """A page's POSTed form, once its CSRF token is found right."""
    try:
        form = await read_form(request)
    except FormError as exc:
        raise csrf.CsrfRefused() from exc
    csrf.check(request, ctx, form.one(csrf.FIELD))
    return form


CheckedForm = Annotated[Form, Depends(_checked_form)]


def add_page_handlers(app: FastAPI) -> None:
    """What the pages' own errors look like: pages, in words, with what to do next."""

    @app.exception_handler(csrf.CsrfRefused)
    async def _csrf(request: Request, _: csrf.CsrfRefused) -> HTMLResponse:
        ctx: ApiContext = request.app.state.ctx
        return message(
            request,
            ctx,
            "This form has expired",
            "The page you sent it from was too old, or came from another site. Go back, "
            "reload the page and try again. (Cookies must be on for this site.)",
            status_code=403,
        )

    @app.exception_handler(SignInNeeded)
    async def _sign_in(_: Request, __: SignInNeeded) -> Response:
        return RedirectResponse("/sign-in?expired=1", status_code=303)

    @app.exception_handler(TooManyPage)
    async def _too_many(request: Request, exc: TooManyPage) -> HTMLResponse:
        ctx: ApiContext = request.app.state.ctx
        wait = retry_after(exc.wait_s)
        minutes = max(1, round(exc.wait_s / 60))
        when = f"{minutes} minute{'s' if minutes != 1 else ''}"
        return message(
            request,
            ctx,
            "Please wait a little",
            f"{exc} Try again in about {when}.",
            status_code=429,
            headers={"Retry-After": wait},
        )


# -- sign up, with the live preview ------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, ctx: Context, limits: Limits, user: MaybeViewer) -> Response:
    form = SubscriptionForm.blank()
    done = DONE.get(request.query_params.get("done", ""))
    return await _signup_page(request, ctx, limits, form, user, done=done)


@router.get("/preview", response_class=HTMLResponse)
async def preview(request: Request, ctx: Context, limits: Limits) -> Response:
    """The preview part of the page for what is typed so far (the page's script asks)."""
    wait = limits.previews.take(client_address(request))
    if wait:
        return HTMLResponse(
            "<p>Too many previews at once; it will update again in a moment.</p>",
            status_code=429,
            headers={"Retry-After": retry_after(wait)},
        )
    typed = SubscriptionForm.read(
        Form({k: request.query_params.getlist(k) for k in request.query_params}),
        ctx.registry.limits.values_per_field,
    )
    return fragment("_preview.html", **await preview_of(ctx, typed))


@router.post("/signup", response_class=HTMLResponse)
async def sign_up(
    request: Request, ctx: Context, limits: Limits, form: CheckedForm, user: MaybeViewer
) -> Response:
    typed = SubscriptionForm.read(form, ctx.registry.limits.values_per_field)
    if form.one("action") == "preview":  # the page without its script: the Preview button
        return await _signup_page(request, ctx, limits, typed, user)
    address, wrong = email_address(form.one("email"))
    typed.values["email"] = address
    if wrong:
        typed.errors["email"] = wrong
    fields = typed.fields()
    try:
        SubscriptionIn.model_validate({**fields, "notify": [own_mail_target("a@example.com")]})
    except ValidationError as exc:
        typed.add_problems(problem_of(error) for error in exc.errors())
    if typed.errors:
        return await _signup_page(request, ctx, limits, typed, user, status_code=422)
    mail = ctx.mail
    if mail is None:
        typed.errors["email"] = (
            "This server cannot send email yet, so it cannot sign anyone up: its operator "
            "sets JOBWIRE_MAIL__URL."
        )
        return await _signup_page(request, ctx, limits, typed, user, status_code=503)
    _take_mail_tokens(request, limits, address)
    hours = ctx.web.confirm_hours

    async def send() -> None:
        token = await ctx.store.email_tokens.issue(
            "confirm", address, timedelta(hours=hours), payload=fields
        )
        link = f"{ctx.base_url}/confirm/{token}"
        await mail.send(address, confirm_message(link, hours))

    ctx.outbox.send_later("confirm", send())
    log.info("web.signed_up", client=client_address(request))
    return message(
        request,
        ctx,
        "Check your inbox",
        f"We sent a link to {address}. Open it within {hours:g} hours to start your alert. "
        "Nothing there? Look in your spam folder, or sign up again in a few minutes.",
        user=user,
    )


def _take_mail_tokens(request: Request, limits: RateLimits, address: str) -> None:
    """Count one email to `address` from this client, or refuse with a 429 page.

    Every request counts against the address whether or not it has an account, so a refusal
    tells nothing about that either.
    """
    wait = limits.mail_requests.wait(client_address(request))
    if wait:
        raise TooManyPage("Too many sign-ups and sign-in links from your network.", wait)
    wait = limits.mails.take(address)
    if wait:
        raise TooManyPage("We have emailed this address several times in the last hour.", wait)
    limits.mail_requests.take(client_address(request))


async def _signup_page(
    request: Request,
    ctx: ApiContext,
    limits: RateLimits,
    form: SubscriptionForm,
    user: Any,
    status_code: int = 200,
    done: str | None = None,
) -> HTMLResponse:
    limits.previews.take(client_address(request))  # the preview on the page costs one too
    return page(
        request,
        ctx,
        "index.html",
        status_code,
        done=done,
        title="Job and news alerts",
        form=form,
        errors=form.ordered_errors(),
        user=user,
        script=True,
        **await preview_of(ctx, form),
    )


async def preview_of(ctx: ApiContext, form: SubscriptionForm) -> dict[str, Any]:
    """What the preview shows: the recent events these criteria match, or, before anything
    to match is typed, the newest events."""
    days = ctx.web.preview_days
    try:
        criteria = Criteria.model_validate(form.criteria())
    except ValidationError:
        kinds = form.values["kinds"] or list(ALL_KINDS)
        since = utcnow() - timedelta(days=days)
        latest = await ctx.store.events.newest(since, kinds, PREVIEW_SHOWN)
        return {"preview_days": days, "matched": None, "events": latest}
    found = await recent_matches(ctx.store, criteria, days)
    return {"preview_days": days, "matched": len(found), "events": found[:PREVIEW_SHOWN]}


def describe(fields: dict[str, Any]) -> str:
    """A sign-up as one line of plain words, for its confirmation email and page."""
    said = []
    for name, word in (
        ("employers", "employer"),
        ("titles", "title"),
        ("cities", "city"),
        ("exclude", "leaving out"),
    ):
        if fields.get(name):
            said.append(f"{word} {' or '.join(fields[name])}")
    kinds = fields.get("kinds") or list(ALL_KINDS)
    said.append(
        "job postings and news"
        if len(kinds) == 2
        else {"posting": "job postings"}.get(kinds[0], "news")
    )
    sub = SubscriptionIn.model_construct(**{**fields, "notify": []})
    with contextlib.suppress(ValueError):
        said.append(sub.schedule().describe())
    return "; ".join(said)


# -- confirming a sign-up ---------------------------------------------------------------------


@router.get("/confirm/{token}", response_class=HTMLResponse)
async def confirm_page(token: str, request: Request, ctx: Context, user: MaybeViewer) -> Response:
    found = await ctx.store.email_tokens.peek("confirm", token)
    if found is None:
        return _link_not_valid(request, ctx, "confirmation")
    return message(
        request,
        ctx,
        "Start your alert?",
        f"Alerts to {found.email} for: {describe(found.payload or {})}.",
        button="Start my alert",
        user=user,
    )


@router.post("/confirm/{token}", response_class=HTMLResponse)
async def confirm(token: str, request: Request, ctx: Context, _: CheckedForm) -> Response:
    found = await ctx.store.email_tokens.use("confirm", token)
    if found is None:
        return _link_not_valid(request, ctx, "confirmation")
    user = await ctx.store.accounts.for_email(found.email)
    try:
        spec = SubscriptionIn.model_validate(
            {**(found.payload or {}), "notify": [own_mail_target(found.email)]}
        )
        created = await ctx.registry.create(actor_of(user), spec)
    except (ValidationError, SubscriptionRefused, LimitReached) as exc:
        # The operator's limits or the rules changed since the sign-up.
        reason = (
            str(exc) if isinstance(exc, LimitReached) else "it asks for what is no longer allowed"
        )
        return message(
            request,
            ctx,
            "This alert could not be started",
            f"Your address is confirmed, but {reason}. Sign in to see your alerts.",
            status_code=409,
            links=[("/sign-in", "Email me a sign-in link")],
        )
    log.info("web.confirmed", subscription_id=created.id, user_id=user.id)
    response = RedirectResponse("/manage?done=confirmed", status_code=303)
    await sessions.start(response, request, ctx, user)
    return response


def _link_not_valid(request: Request, ctx: ApiContext, what: str) -> HTMLResponse:
    again = ("/", "Sign up again") if what == "confirmation" else ("/sign-in", "Get a new link")
    return message(
        request,
        ctx,
        "This link does not work any more",
        f"This {what} link was used already, has expired, or was cut short by your email "
        "program. Links work once, for a limited time.",
        status_code=404,
        links=[again],
    )


# -- signing in with an emailed link ----------------------------------------------------------


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, ctx: Context, user: MaybeViewer) -> Response:
    expired = request.query_params.get("expired") == "1"
    return page(
        request,
        ctx,
        "sign_in.html",
        title="Manage your alerts",
        email="",
        error=None,
        expired=expired and user is None,
        user=user,
    )


@router.post("/sign-in", response_class=HTMLResponse)
async def ask_sign_in_link(
    request: Request, ctx: Context, limits: Limits, form: CheckedForm, user: MaybeViewer
) -> Response:
    address, wrong = email_address(form.one("email"))
    if wrong or ctx.mail is None:
        error = wrong or ("This server cannot send email yet: its operator sets JOBWIRE_MAIL__URL.")
        return page(
            request,
            ctx,
            "sign_in.html",
            422 if wrong else 503,
            title="Manage your alerts",
            email=address,
            error=error,
            expired=False,
            user=user,
        )
    mail = ctx.mail
    _take_mail_tokens(request, limits, address)
    minutes = ctx.web.sign_in_minutes

    async def send() -> None:
        known = await ctx.store.accounts.by_email(address)
        if known is None:
            await mail.send(address, no_account_message(f"{ctx.base_url}/"))
            return
        token = await ctx.store.email_tokens.issue("sign-in", address, timedelta(minutes=minutes))
        await mail.send(address, sign_in_message(f"{ctx.base_url}/sign-in/{token}", minutes))

    ctx.outbox.send_later("sign-in", send())
    return message(
        request,
        ctx,
        "Check your inbox",
        f"If {address} has jobwire alerts, a sign-in link is on its way to it. The link works "
        f"once, within {minutes:g} minutes.",
        user=user,
    )


@router.get("/sign-in/{token}", response_class=HTMLResponse)
async def sign_in_link_page(
    token: str, request: Request, ctx: Context, user: MaybeViewer
) -> Response:
    found = await ctx.store.email_tokens.peek("sign-in", token)
    if found is None:
        return _link_not_valid(request, ctx, "sign-in")
    return message(
        request,
        ctx,
        "Sign in",
        f"Sign in as {found.email} to manage your alerts on this browser.",
        button="Sign in",
        user=user,
    )


@router.post("/sign-in/{token}", response_class=HTMLResponse)
async def sign_in(token: str, request: Request, ctx: Context, _: CheckedForm) -> Response:
    found = await ctx.store.email_tokens.use("sign-in", token)
    user = await ctx.store.accounts.by_email(found.email) if found else None
    if user is None:
        return _link_not_valid(request, ctx, "sign-in")
    response = RedirectResponse("/manage?done=signed-in", status_code=303)
    await sessions.start(response, request, ctx, user)
    log.info("web.signed_in", user_id=user.id)
    return response


@router.post("/sign-out", response_class=HTMLResponse)
async def sign_out(request: Request, ctx: Context, _: CheckedForm) -> Response:
    response = RedirectResponse("/?done=signed-out", status_code=303)
    await sessions.end(response, request, ctx)
    return response
