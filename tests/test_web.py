"""The subscriber's web page as a browser without a screen meets it: sign up, confirm by email,
sign in by an emailed link, manage alerts and keys; CSRF, rate limits, cookies, no user
enumeration, escaping. Real store, real SMTP sink, the real app (in process, through httpx).
The same journeys in a real Chromium are in tests/integration/test_web_browser.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import escape

from config.settings import LimitSettings
from consumers.events import Event, JobPosting
from devstack.sinks import ReceivedMail, SmtpSink
from service.accounts import add_user
from service.delivery import AppriseNotifier
from service.own_mail import own_mail_target
from service.preview import recent_matches
from service.redaction import mask
from service.registry import SubscriptionRegistry
from service.store import Match, Store, utcnow
from service.store.ledger import Outcomes
from service.subscriptions import Criteria, SubscriptionIn
from service.system_mail import MailRouting, SystemMail
from service.targets import TargetPolicy
from service.unsubscribe import UnsubscribeLinks
from service.web import ApiContext, create_api

# The operator's SMTP login: it must never reach a page, an export or an API answer.
SMTP_PASSWORD = "smtp-s3cret-Pw"
TARGET_SECRET = "hook-t0ken-8c1d"
DNS = {"hooks.example.com": ["93.184.215.15"], "intranet.example.com": ["10.1.2.3"]}


def resolve(host: str) -> list[str]:
    if host not in DNS:
        raise OSError(f"unknown host {host}")
    return DNS[host]


@dataclass
class Web:
    app: Any
    store: Store
    ctx: ApiContext
    smtp: SmtpSink
    base_url: str

    def browser(self) -> httpx.AsyncClient:
        """A browser of its own: its own cookies."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("203.0.113.7", 5000)),
            base_url=self.base_url,
        )

    async def mail(self, count: int) -> list[ReceivedMail]:
        await self.ctx.outbox.drain()
        return await asyncio.to_thread(self.smtp.wait_for, count, 15.0)


@asynccontextmanager
async def serving(
    tmp_path: Path,
    limits: LimitSettings | None = None,
    base_url: str = "http://jobwire.test",
    mail_password: str = "",
) -> AsyncIterator[Web]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'web.db'}")
    policy = TargetPolicy(["mailto", "json"], resolver=resolve)
    users = AppriseNotifier(policy, 2, 10)
    with SmtpSink() as smtp:
        login = f"jobwire:{mail_password}@" if mail_password else ""
        url = f"mailto://{login}127.0.0.1:{smtp.port}?from=jobwire@example.com"
        mail = SystemMail(url, AppriseNotifier(TargetPolicy((), allow_private_hosts=True), 2, 10))
        ctx = ApiContext(
            store=store,
            registry=SubscriptionRegistry(store, policy, limits or LimitSettings(), mail_on=True),
            links=UnsubscribeLinks(b"test-secret", base_url),
            notifier=MailRouting(users, mail),
            operator_key=None,
            kafka_connected=lambda: True,
            mail=mail,
        )
        try:
            yield Web(create_api(ctx), store, ctx, smtp, base_url)
        finally:
            await ctx.outbox.drain()
            users.close()
            mail.close()
            await store.close()


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[Web]:
    async with serving(tmp_path) as running:
        yield running


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found[1]


async def submit(
    browser: httpx.AsyncClient, page_path: str, to: str, **fields: Any
) -> httpx.Response:
    """Open `page_path`, fill in its form (with its CSRF token) and send it to `to`."""
    page = await browser.get(page_path)
    return await browser.post(to, data={"csrf": csrf_of(page), **fields})


def link_in(mail: ReceivedMail, kind: str) -> str:
    found = re.search(rf"https?://\S+/{kind}/[A-Za-z0-9_-]+", mail.body)
    assert found, mail.body
    return found[0]


SIGN_UP = {"employers": "Nordstrom", "cities": "Portland", "kinds": ["posting", "article"]}


async def signed_up(web: Web, browser: httpx.AsyncClient, email: str) -> str:
    """Sign up, confirm by the emailed link; the browser is signed in. Returns the link."""
    before = len(web.smtp.messages)
    answer = await submit(browser, "/", "/signup", email=email, action="signup", **SIGN_UP)
    assert answer.status_code == 200, answer.text
    link = link_in((await web.mail(before + 1))[before], "confirm")
    page = await browser.get(link)
    done = await browser.post(link, data={"csrf": csrf_of(page)})
    assert done.status_code == 303
    assert done.headers["location"] == "/manage?done=confirmed"
    return link


async def test_a_sign_up_starts_nothing_until_its_emailed_link_is_confirmed(web: Web) -> None:
    async with web.browser() as browser:
        answer = await submit(
            browser, "/", "/signup", email=" Ana@Example.com ", action="signup", **SIGN_UP
        )
        assert answer.status_code == 200
        assert "Check your inbox" in answer.text
        assert "ana@example.com" in answer.text
        (mail,) = await web.mail(1)
        assert mail.to == "ana@example.com"
        assert mail.subject == "Confirm your jobwire alert"
        assert "Nordstrom" not in mail.body  # nothing typed by a stranger goes into an email
        link = link_in(mail, "confirm")
        assert link.startswith("http://jobwire.test/confirm/")
        assert await web.store.subscriptions.all() == []

        # Opening the link (as a mail scanner would) only asks.
        for _ in range(2):
            page = await browser.get(link)
            assert page.status_code == 200
            assert "Start your alert?" in page.text
            assert "employer Nordstrom; city Portland; job postings and news; instant" in page.text
        assert await web.store.subscriptions.all() == []

        confirmed = await browser.post(link, data={"csrf": csrf_of(page)})
        assert confirmed.status_code == 303
        (sub,) = await web.store.subscriptions.all()
        assert sub.active
        assert sub.employers == ["Nordstrom"]
        assert sub.notify == [own_mail_target("ana@example.com")]
        user = await web.store.accounts.by_email("ana@example.com")
        assert user is not None
        assert sub.owner == user.id

        manage = await browser.get(confirmed.headers["location"])
        assert manage.status_code == 200
        assert "Your alert is on." in manage.text
        assert "Email to ana@example.com" in manage.text
        # The link worked once.
        again = await browser.post(link, data={"csrf": csrf_of(manage)})
        assert again.status_code == 404
        assert "does not work any more" in again.text
    assert len(await web.store.subscriptions.all()) == 1


async def test_sign_up_and_sign_in_answer_alike_whether_or_not_an_address_has_alerts(
    web: Web,
) -> None:
    async with web.browser() as browser:
        await signed_up(web, browser, "ana@example.com")
    answers = {}
    for address in ("ana@example.com", "nobody@example.com"):
        async with web.browser() as browser:
            signup = await submit(
                browser, "/", "/signup", email=address, action="signup", **SIGN_UP
            )
            sign_in = await submit(browser, "/sign-in", "/sign-in", email=address)
        answers[address] = [
            (r.status_code, _without_tokens(r.text).replace(address, "ADDRESS"))
            for r in (signup, sign_in)
        ]
    assert answers["ana@example.com"] == answers["nobody@example.com"]
    # What differs is only in the mailboxes: a link for ana, a pointer to sign up for nobody.
    mails = await web.mail(5)
    for_ana = [m for m in mails[1:] if m.to == "ana@example.com"]
    for_nobody = [m for m in mails if m.to == "nobody@example.com"]
    assert any("/sign-in/" in m.body for m in for_ana)
    assert not any("/sign-in/" in m.body for m in for_nobody)
    assert any("has none yet" in m.body for m in for_nobody)


def _without_tokens(text: str) -> str:
    return re.sub(r'name="csrf" value="[^"]+"', "", text)


async def test_sign_in_links_work_once_and_expire(web: Web) -> None:
    async with web.browser() as browser:
        await signed_up(web, browser, "ana@example.com")
    async with web.browser() as browser:
        assert (await browser.get("/manage")).headers["location"] == "/sign-in?expired=1"
        await submit(browser, "/sign-in", "/sign-in", email="ana@example.com")
        link = link_in((await web.mail(2))[1], "sign-in")
        page = await browser.get(link)
        assert "Sign in as ana@example.com" in page.text
        signed_in = await browser.post(link, data={"csrf": csrf_of(page)})
        assert signed_in.headers["location"] == "/manage?done=signed-in"
        assert (await browser.get("/manage")).status_code == 200
    async with web.browser() as other:
        page = await other.get("/sign-in")
        used = await other.post(link, data={"csrf": csrf_of(page)})
        assert used.status_code == 404
        assert (await other.get(link)).status_code == 404
        # An expired link does not work either, though never used.
        token = await web.store.email_tokens.issue(
            "sign-in", "ana@example.com", timedelta(seconds=-1)
        )
        expired = await other.post(f"/sign-in/{token}", data={"csrf": csrf_of(page)})
        assert expired.status_code == 404
        assert (await other.get("/manage")).status_code == 303


async def test_an_unconfirmed_sign_up_expires(web: Web) -> None:
    token = await web.store.email_tokens.issue(
        "confirm", "ana@example.com", timedelta(seconds=-1), {"employers": ["Ross"]}
    )
    async with web.browser() as browser:
        page = await browser.get(f"/confirm/{token}")
        assert page.status_code == 404
        assert "has expired" in page.text
        home = await browser.get("/")
        late = await browser.post(f"/confirm/{token}", data={"csrf": csrf_of(home)})
        assert late.status_code == 404
    assert await web.store.subscriptions.all() == []
    assert await web.store.accounts.by_email("ana@example.com") is None


async def test_sign_ups_are_limited_per_address_and_per_client(tmp_path: Path) -> None:
    limits = LimitSettings(mails_per_address_per_hour=2, mail_requests_per_client_per_hour=4)
    async with serving(tmp_path, limits) as web, web.browser() as browser:
        statuses = []
        for _ in range(3):
            answer = await submit(
                browser, "/", "/signup", email="ana@example.com", action="signup", **SIGN_UP
            )
            statuses.append(answer.status_code)
        assert statuses == [200, 200, 429]
        assert int(answer.headers["retry-after"]) > 60
        assert "emailed this address several times" in answer.text
        # The third did not count against the client; two more addresses do, then it stops.
        for n, expected in ((1, 200), (2, 200), (3, 429)):
            answer = await submit(
                browser, "/", "/signup", email=f"b{n}@example.com", action="signup", **SIGN_UP
            )
            assert answer.status_code == expected
        assert "from your network" in answer.text
        # "Email me a link" counts the same way.
        assert (
            await submit(browser, "/sign-in", "/sign-in", email="c@example.com")
        ).status_code == 429
        assert len(await web.mail(4)) == 4


async def test_forms_without_their_csrf_token_are_refused(web: Web) -> None:
    async with web.browser() as browser:
        await signed_up(web, browser, "ana@example.com")
        (sub,) = await web.store.subscriptions.all()
        page = await browser.get("/manage")
        token = csrf_of(page)
        pause = f"/manage/subscriptions/{sub.id}/pause"
        for data in ({}, {"csrf": ""}, {"csrf": token[:-1] + ("A" if token[-1] != "A" else "B")}):
            refused = await browser.post(pause, data=data)
            assert refused.status_code == 403
            assert "This form has expired" in refused.text
        # Another browser's token does not fit this one.
        async with web.browser() as other:
            theirs = csrf_of(await other.get("/"))
            assert (await browser.post(pause, data={"csrf": theirs})).status_code == 403
            anonymous = await other.post("/signup", data={"email": "x@example.com", **SIGN_UP})
            assert anonymous.status_code == 403
        assert (await web.store.subscriptions.get(sub.id)).active  # type: ignore[union-attr]
        paused = await browser.post(pause, data={"csrf": token})
        assert paused.status_code == 303
        assert not (await web.store.subscriptions.get(sub.id)).active  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("base_url", "name", "secure"),
    [
        ("http://jobwire.test", "jobwire_session", False),
        ("https://jobwire.test", "__Host-jobwire_session", True),
    ],
)
async def test_the_session_cookie_is_httponly_samesite_and_secure_over_https(
    tmp_path: Path, base_url: str, name: str, secure: bool
) -> None:
    async with serving(tmp_path, base_url=base_url) as web, web.browser() as browser:
        await submit(browser, "/", "/signup", email="ana@example.com", action="signup", **SIGN_UP)
        link = link_in((await web.mail(1))[0], "confirm")
        page = await browser.get(link)
        done = await browser.post(link, data={"csrf": csrf_of(page)})
        (cookie,) = [c for c in done.headers.get_list("set-cookie") if "session" in c]
        assert cookie.startswith(f"{name}=")
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert "httponly" in attributes
        assert "samesite=lax" in attributes
        assert "path=/" in attributes
        assert ("secure" in attributes) is secure
        # Signing out ends the session on the server too: the old cookie opens nothing.
        stolen = browser.cookies.get(name)
        manage = await browser.get("/manage")
        await browser.post("/sign-out", data={"csrf": csrf_of(manage)})
        async with web.browser() as thief:
            thief.cookies.set(name, stolen or "", domain="jobwire.test")
            assert (await thief.get("/manage")).status_code == 303


async def test_errors_are_shown_next_to_their_fields_in_words(web: Web) -> None:
    async with web.browser() as browser:
        answer = await submit(
            browser,
            "/",
            "/signup",
            action="signup",
            email="ana@",
            employers="",
            kinds="posting",
            timezone="Mars/Olympus",
            quiet_from="22:00",
        )
    assert answer.status_code == 422
    page = answer.text
    summary = re.findall(r'<li><a href="#f-(\w+)">[^<]*</a></li>', page)
    assert summary == ["email", "employers", "timezone", "quiet_to"]
    for field, words in (
        ("email", "Type a whole email address, like ana@example.com."),
        ("employers", "Type at least one employer, job title or city to follow."),
        ("timezone", "is not an IANA time zone name"),
        ("quiet_to", "Set when quiet hours start and when they end, or neither."),
    ):
        error = re.search(rf'<p class="error" id="f-{field}-error">(.*?)</p>', page, re.S)
        assert error, field
        assert words in error[1]
        assert re.search(
            rf'id="f-{field}"[^>]*aria-describedby="[^"]*f-{field}-error"[^>]*aria-invalid="true"',
            page,
            re.S,
        ), field
    # What was typed is shown again, escaped.
    assert 'value="Mars/Olympus"' in page
    assert await web.store.email_tokens.peek("confirm", "x") is None
    assert web.smtp.messages == []


async def test_a_person_sees_and_changes_only_their_own_alerts(web: Web) -> None:
    async with web.browser() as ana, web.browser() as ben:
        await signed_up(web, ana, "ana@example.com")
        await signed_up(web, ben, "ben@example.com")
        subs = {s.notify[0]: s for s in await web.store.subscriptions.all()}
        anas = subs[own_mail_target("ana@example.com")]
        page = await ben.get("/manage")
        assert "ana@example.com" not in page.text
        assert (await ben.get(f"/manage/subscriptions/{anas.id}")).status_code == 404
        for action in ("pause", "delete", "test"):
            answer = await ben.post(
                f"/manage/subscriptions/{anas.id}/{action}", data={"csrf": csrf_of(page)}
            )
            assert answer.status_code == 404, action
        still = await web.store.subscriptions.get(anas.id)
        assert still is not None
        assert still.active


async def test_editing_pausing_resuming_and_deleting_from_the_page(web: Web) -> None:
    async with web.browser() as browser:
        await signed_up(web, browser, "ana@example.com")
        (sub,) = await web.store.subscriptions.all()
        edit = await browser.get(f"/manage/subscriptions/{sub.id}")
        assert 'value="Nordstrom"' in edit.text
        token = csrf_of(edit)
        saved = await browser.post(
            f"/manage/subscriptions/{sub.id}",
            data={
                "csrf": token,
                "name": "Mornings",
                "employers": "Nordstrom, Macy's",
                "cities": "",
                "titles": "asset protection",
                "kinds": "posting",
                "frequency": "daily",
                "at": "07:30",
                "timezone": "Europe/Paris",
                "weekday": "monday",
            },
        )
        assert saved.status_code == 303
        changed = await web.store.subscriptions.get(sub.id)
        assert changed is not None
        assert (changed.name, changed.employers, changed.cities, changed.kinds) == (
            "Mornings",
            ["Nordstrom", "Macy's"],
            [],
            ["posting"],
        )
        assert changed.schedule().describe() == "daily at 07:30 (Europe/Paris)"
        assert changed.notify == sub.notify
        manage = await browser.get("/manage")
        assert "daily at 07:30 (Europe/Paris)" in manage.text
        for action, active in (("pause", False), ("resume", True)):
            await browser.post(f"/manage/subscriptions/{sub.id}/{action}", data={"csrf": token})
            now = await web.store.subscriptions.get(sub.id)
            assert now is not None
            assert now.active is active
        await browser.post(f"/manage/subscriptions/{sub.id}/delete", data={"csrf": token})
        assert await web.store.subscriptions.get(sub.id) is None
        assert "You have no alerts" in (await browser.get("/manage")).text


async def test_chat_targets_go_through_the_target_policy_and_are_shown_masked(
    web: Web,
) -> None:
    async with web.browser() as browser:
        await signed_up(web, browser, "ana@example.com")
        (sub,) = await web.store.subscriptions.all()
        edit = await browser.get(f"/manage/subscriptions/{sub.id}")
        add = f"/manage/subscriptions/{sub.id}/targets"
        internal = await browser.post(
            add, data={"csrf": csrf_of(edit), "notify": "json://intranet.example.com/hook"}
        )
        assert internal.status_code == 422
        assert "alerts may only go to public hosts" in internal.text
        refused_scheme = await browser.post(
            add, data={"csrf": csrf_of(edit), "notify": "tgram://123456789:ABCdef/12345"}
        )
        assert "is not allowed here" in refused_scheme.text
        secret = f"json://hooks.example.com/alerts?token={TARGET_SECRET}"
        added = await browser.post(add, data={"csrf": csrf_of(edit), "notify": secret})
        assert added.status_code == 303, added.text
        now = await web.store.subscriptions.get(sub.id)
        assert now is not None
        assert now.notify == [own_mail_target("ana@example.com"), secret]
        for path in (f"/manage/subscriptions/{sub.id}", "/manage"):
            page = await browser.get(path)
            assert TARGET_SECRET not in page.text
            assert mask(secret) in page.text
        removed = await browser.post(f"{add}/remove", data={"csrf": csrf_of(page), "position": "1"})
        assert removed.status_code == 303
        now = await web.store.subscriptions.get(sub.id)
        assert now is not None
        assert now.notify == [own_mail_target("ana@example.com")]
        last = await browser.post(f"{add}/remove", data={"csrf": csrf_of(page), "position": "0"})
        assert last.status_code == 422
        assert "An alert needs somewhere to go" in last.text


async def test_own_mail_targets_hold_no_operator_secret_and_go_only_to_a_confirmed_address(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path, mail_password=SMTP_PASSWORD) as web:
        token = await web.store.email_tokens.issue(
            "confirm", "ana@example.com", timedelta(hours=1), {"employers": ["Ross"]}
        )
        async with web.browser() as browser:
            page = await browser.get(f"/confirm/{token}")
            await browser.post(f"/confirm/{token}", data={"csrf": csrf_of(page)})
            key = re.search(
                r'id="new-key">([^<]+)<',
                (await submit(browser, "/manage", "/manage/keys", label="laptop")).text,
            )
            assert key
            pages = [await browser.get("/manage")]
            (sub,) = await web.store.subscriptions.all()
            pages.append(await browser.get(f"/manage/subscriptions/{sub.id}"))
        auth = {"Authorization": f"Bearer {key[1]}"}
        async with web.browser() as api:
            pages.append(await api.get("/subscriptions", headers=auth))
            pages.append(await api.get("/me/export?targets=full", headers=auth))
            theirs = await api.post(
                "/subscriptions",
                headers=auth,
                json={"employers": ["Ross"], "notify": [own_mail_target("ben@example.com")]},
            )
            mine = await api.post(
                "/subscriptions",
                headers=auth,
                json={"employers": ["Ross"], "notify": [own_mail_target("ana@example.com")]},
            )
        for answer in pages:
            assert SMTP_PASSWORD not in answer.text
        export = pages[-1].json()
        assert export["user"]["email"] == "ana@example.com"
        assert export["subscriptions"][0]["notify"] == [own_mail_target("ana@example.com")]
        assert theirs.status_code == 422
        assert "only to the address you confirmed" in theirs.json()["errors"][0]["message"]
        assert mine.status_code == 201


async def test_api_keys_made_on_the_page_work_until_revoked(web: Web) -> None:
    async with web.browser() as browser:
        await signed_up(web, browser, "ana@example.com")
        made = await submit(browser, "/manage", "/manage/keys", label="my <laptop>")
        assert made.status_code == 201
        key = re.search(r'id="new-key">(jw_[^<]+)<', made.text)
        assert key
        assert "my &lt;laptop&gt;" in made.text
        auth = {"Authorization": f"Bearer {key[1]}"}
        async with web.browser() as api:
            listed = await api.get("/subscriptions", headers=auth)
            assert listed.status_code == 200
            assert len(listed.json()) == 1
        again = await browser.get("/manage")
        assert key[1] not in again.text  # shown once
        key_id = re.search(r'action="/manage/keys/(\d+)/revoke"', again.text)
        assert key_id
        await browser.post(f"/manage/keys/{key_id[1]}/revoke", data={"csrf": csrf_of(again)})
        async with web.browser() as api:
            assert (await api.get("/subscriptions", headers=auth)).status_code == 401


async def test_the_preview_shows_what_the_service_matcher_matches(
    web: Web, sample_events: list[Event]
) -> None:
    await web.store.ledger.record(sample_events, [])
    async with web.browser() as browser:
        for query, expected in (
            ({"employers": "NORDSTROM", "cities": "Portland"}, 2),
            ({"employers": "MACY'S"}, 6),
            ({"titles": "Store Protection Specialist", "cities": "Dallas"}, 1),
            ({"employers": "Tencent", "kinds": ["article"]}, 1),
            ({"employers": "Nobody Here"}, 0),
        ):
            params: dict[str, Any] = {"kinds": ["posting", "article"], **query}
            answer = await browser.get("/preview", params=params)
            assert answer.status_code == 200
            items = re.findall(r'<li class="event (posting|article)">', answer.text)
            criteria = Criteria.model_validate(
                {key: value if key == "kinds" else [value] for key, value in params.items()}
            )
            assert len(items) == expected == len(await recent_matches(web.store, criteria, 7))
        latest = await browser.get("/")
        assert "Latest events" in latest.text
        assert len(re.findall(r'<li class="event ', latest.text)) == len(sample_events)


async def test_text_from_events_and_people_is_escaped(web: Web) -> None:
    evil = "<script>alert(1)</script>"
    await web.store.ledger.record(
        [
            JobPosting(
                id="x-1",
                employer=f"{evil} Corp",
                title="<img src=x onerror=alert(2)> clerk",
                city="Portland",
                url="javascript:alert(3)",
            )
        ],
        [],
    )
    async with web.browser() as browser:
        preview = await browser.get(
            "/preview", params={"employers": f"{evil} Corp", "kinds": "posting"}
        )
        assert "&lt;script&gt;alert(1)&lt;/script&gt; Corp" in preview.text
        assert "&lt;img src=x onerror=alert(2)&gt;" in preview.text
        assert "<script>" not in preview.text
        assert "javascript:" not in preview.text
        answer = await submit(
            browser,
            "/",
            "/signup",
            action="preview",
            email=f'"{evil}',
            employers=f"{evil} Corp",
            kinds="posting",
        )
        assert "<script>alert" not in answer.text
        assert "&lt;script&gt;" in answer.text
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp


async def test_static_files_and_pages_without_a_mail_server(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'web.db'}")
    policy = TargetPolicy(["json"])
    ctx = ApiContext(
        store=store,
        registry=SubscriptionRegistry(store, policy, LimitSettings()),
        links=UnsubscribeLinks(b"s", "http://jobwire.test"),
        notifier=AppriseNotifier(policy, 1, 5),
        operator_key=None,
        kafka_connected=lambda: True,
    )
    transport = httpx.ASGITransport(app=create_api(ctx))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://jobwire.test") as c:
            home = await c.get("/")
            assert "cannot send email yet" in home.text
            answer = await c.post(
                "/signup",
                data={
                    "csrf": csrf_of(home),
                    "email": "ana@example.com",
                    "action": "signup",
                    **SIGN_UP,
                },
            )
            assert answer.status_code == 503
            assert "JOBWIRE_MAIL__URL" in answer.text
            css = await c.get("/static/style.css")
            assert css.status_code == 200
            assert css.headers["content-type"].startswith("text/css")
            assert (await c.get("/static/page.js")).status_code == 200
            # An API user cannot ask for jobwire's own mail either.
            created = await add_user(store, "ana")
            assert created is not None
            refused = await c.post(
                "/subscriptions",
                headers={"Authorization": f"Bearer {created[1]}"},
                json={"employers": ["Ross"], "notify": [own_mail_target("ana@example.com")]},
            )
            assert refused.status_code == 422
            assert "JOBWIRE_MAIL__URL is not set" in refused.text
    finally:
        await store.close()


async def test_alerts_to_an_own_mail_target_go_through_the_operators_mail_server(
    web: Web,
) -> None:
    sub = await web.store.subscriptions.add(
        SubscriptionIn(employers=["Ross"], notify=[own_mail_target("ana+jobs@example.com")])
    )
    results = await web.ctx.registry.send_test(
        _operator(), sub.id, web.ctx.notifier, web.ctx.links.url(sub.id)
    )
    assert [r.ok for r in results] == [True]
    (mail,) = await web.mail(1)
    assert mail.recipients == ["ana+jobs@example.com"]
    assert mail.from_ == "jobwire@example.com"
    assert mail.subject == "jobwire test alert"
    assert mail.message["List-Unsubscribe"] == f"<{web.ctx.links.url(sub.id)}>"


def _operator() -> Any:
    from service.accounts import OPERATOR

    return OPERATOR


async def test_a_test_alert_from_the_page_says_per_target_whether_it_arrived(web: Web) -> None:
    async with web.browser() as browser:
        await signed_up(web, browser, "ana@example.com")
        (sub,) = await web.store.subscriptions.all()
        page = await browser.get(f"/manage/subscriptions/{sub.id}")
        tested = await browser.post(
            f"/manage/subscriptions/{sub.id}/test", data={"csrf": csrf_of(page)}
        )
    assert tested.status_code == 200
    assert re.search(r'<li class="ok">Email to ana@example.com: arrived</li>', tested.text)
    test_mail = (await web.mail(2))[1]
    assert test_mail.subject == "jobwire test alert"
    assert test_mail.to == "ana@example.com"


async def test_the_last_alerts_and_a_dead_target_with_its_reason_are_shown(
    web: Web, sample_events: list[Event]
) -> None:
    async with web.browser() as browser:
        await signed_up(web, browser, "ana@example.com")
        (sub,) = await web.store.subscriptions.all()
        hook = f"json://hooks.example.com/alerts?token={TARGET_SECRET}"
        page = await browser.get(f"/manage/subscriptions/{sub.id}")
        await browser.post(
            f"/manage/subscriptions/{sub.id}/targets", data={"csrf": csrf_of(page), "notify": hook}
        )
        sub = await web.store.subscriptions.get(sub.id)  # type: ignore[assignment]
        posting = next(e for e in sample_events if e.kind == "posting")
        await web.store.ledger.record([posting], [Match(sub.id, posting, sub.target_ids)])
        rows = {row.target_id: row for row in await web.store.ledger.recent()}
        mail_row, hook_row = (rows[tid] for tid in sub.target_ids)
        now = utcnow()
        await web.store.ledger.apply(
            Outcomes(
                sent=[(mail_row.id, now)],
                dead=[(hook_row.id, f"HTTP 410 from {hook}: the webhook is gone")],
            )
        )
        manage = await browser.get("/manage")
    text = manage.text
    assert TARGET_SECRET not in text
    dead = re.search(r'<section class="problems".*?</section>', text, re.S)
    assert dead
    assert mask(hook) in dead[0]
    assert "the webhook is gone" in dead[0]
    alerts = re.search(r'aria-labelledby="alerts-title">.*?</section>', text, re.S)
    assert alerts
    what = f"{posting.title} at {posting.employer}, {posting.city}"  # type: ignore[union-attr]
    assert alerts[0].count(str(escape(what))) == 2
    assert "Sent" in alerts[0]
    assert "Not delivered: HTTP 410" in alerts[0]


async def test_a_target_that_took_an_alert_after_one_died_is_not_shown_as_dead(
    web: Web, sample_events: list[Event]
) -> None:
    async with web.browser() as browser:
        await signed_up(web, browser, "ana@example.com")
        (sub,) = await web.store.subscriptions.all()
        first, later = [e for e in sample_events if e.kind == "posting"][:2]
        for event in (first, later):
            await web.store.ledger.record([event], [Match(sub.id, event, sub.target_ids)])
        older, newer = sorted(await web.store.ledger.recent(), key=lambda row: row.id)
        await web.store.ledger.apply(
            Outcomes(
                dead=[(older.id, "HTTP 503 from the mail server")], sent=[(newer.id, utcnow())]
            )
        )
        manage = await browser.get("/manage")
    # It failed once, then delivered: as jobwire status and the meta-alerts say, it is alive.
    assert '<section class="problems"' not in manage.text
    assert "Not delivered: HTTP 503" in manage.text  # the failed alert is still listed


async def test_a_form_one_instance_served_is_accepted_by_another(web: Web) -> None:
    # Several instances behind one address, or one restarted: the form's CSRF token comes from
    # the secret they share, not from the process that served it.
    ctx = web.ctx
    other = create_api(
        ApiContext(
            store=ctx.store,
            registry=ctx.registry,
            links=UnsubscribeLinks(b"test-secret", ctx.base_url),  # the secret they share
            notifier=ctx.notifier,
            operator_key=ctx.operator_key,
            kafka_connected=ctx.kafka_connected,
            mail=ctx.mail,
            web=ctx.web,
        )
    )
    async with web.browser() as browser:
        page = await browser.get("/")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other, client=("203.0.113.7", 5000)),
            base_url=web.base_url,
            cookies=browser.cookies,
        ) as elsewhere:
            answer = await elsewhere.post(
                "/signup",
                data={
                    "csrf": csrf_of(page),
                    "email": "ana@example.com",
                    "action": "signup",
                    **SIGN_UP,
                },
            )
    assert answer.status_code == 200, answer.text
    await web.mail(1)
