"""The subscriber's web page in a real headless Chromium, against jobwire running with real
Kafka and a real SMTP server: sign up with the live preview, confirm from the email, get an
alert, sign in by an emailed link, pause, unsubscribe; without JavaScript; escaping and
secrets; a phone's width and the keyboard.

Each test saves a screenshot of every page it visits under its tmp_path (`screens/`)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from playwright.async_api import Browser, Page, expect

from config.settings import MailSettings, Settings
from consumers.publish import publish_file
from devstack.browser import save_screenshot
from devstack.kafka import KafkaBroker
from devstack.sinks import ReceivedMail, SmtpSink
from service.app import Service
from service.store import Store
from tests.conftest import SAMPLES, make_settings
from tests.integration.conftest import eventually, running

pytestmark = pytest.mark.integration

ADDRESS = "ana@example.com"
SAMPLE_KEYS = [
    (str(line["kind"]), str(line["id"]))
    for line in map(orjson.loads, SAMPLES.read_bytes().splitlines())
]
NORDSTROM_IN_PORTLAND = [
    "Asset Protection Agent - Cascade Station Rack",
    "Asset Protection - Coordinator - Portland Distribution Center",
]


@dataclass
class Site:
    """jobwire running, what it serves, and where its email lands."""

    service: Service
    settings: Settings
    store: Store
    smtp: SmtpSink
    url: str
    screens: Path

    async def shot(self, page: Page, name: str) -> None:
        await save_screenshot(page, self.screens / f"{name}.png")

    async def mail(self, count: int) -> list[ReceivedMail]:
        return await asyncio.to_thread(self.smtp.wait_for, count, 60.0)

    async def publish(self, tmp: Path, *events: dict[str, object]) -> None:
        path = tmp / f"events-{time.monotonic_ns()}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
        await publish_file(self.settings.kafka, path)

    async def matching(self, subscription_id: str, wanted: bool = True) -> None:
        """Wait until the running matcher has taken in a change made on the page."""
        live = self.service.live
        assert live is not None

        async def taken_in() -> bool:
            return (subscription_id in live.targets) is wanted

        await eventually(taken_in)

    async def recorded(self, *keys: tuple[str, str]) -> None:
        """Wait until the service consumed these events (kind, id): matched and recorded."""

        async def seen() -> bool:
            return len(await self.store.events.some(keys)) == len(set(keys))

        await eventually(seen)


@pytest.fixture
def screens(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "screens"
    folder.mkdir()
    yield folder
    print(f"screenshots: {sorted(p.name for p in folder.iterdir())} in {folder}")


@asynccontextmanager
async def site(kafka: KafkaBroker, tmp_path: Path, screens: Path) -> AsyncIterator[Site]:
    with SmtpSink(maildir=tmp_path / "mail") as smtp:
        settings = make_settings(tmp_path, kafka.bootstrap).model_copy(
            update={
                "mail": MailSettings.model_validate(
                    {"url": f"mailto://127.0.0.1:{smtp.port}?from=jobwire@example.com"}
                )
            }
        )
        await publish_file(settings.kafka, SAMPLES)
        store = await Store.open(settings.store.url)
        try:
            async with running(settings) as service:
                assert service.api_url is not None
                found = Site(service, settings, store, smtp, service.api_url, screens)
                # The samples are in the store (consumed), so the preview can show them.
                await found.recorded(*SAMPLE_KEYS)
                yield found
        finally:
            await store.close()


def confirm_link(mail: ReceivedMail, kind: str) -> str:
    found = re.search(rf"http://\S+/{kind}/[A-Za-z0-9_.-]+", mail.body)
    assert found, mail.body
    return found[0]


async def preview_titles(page: Page) -> list[str]:
    return [t.strip() for t in await page.locator("#preview li.event a").all_inner_texts()]


async def test_a_person_signs_up_confirms_gets_an_alert_pauses_and_unsubscribes(
    kafka: KafkaBroker, browser: Browser, page: Page, tmp_path: Path, screens: Path
) -> None:
    started = time.monotonic()
    print(f"Chromium {browser.version}")
    async with site(kafka, tmp_path, screens) as web:
        # The front door: the newest events before anything is typed.
        await page.goto(web.url + "/")
        await expect(page.get_by_role("heading", name="Latest events")).to_be_visible()
        assert await page.locator("#preview li.event").count() == 23
        await web.shot(page, "01-sign-up")

        # The live preview follows what is typed, without a page load.
        await page.get_by_label("Email address").fill(ADDRESS)
        await page.get_by_label("Employers").fill("NORDSTROM")
        await page.get_by_label("Cities").fill("Portland")
        await expect(page.locator("#preview")).to_contain_text("2 events of the last 7 days match")
        assert sorted(await preview_titles(page)) == sorted(NORDSTROM_IN_PORTLAND)
        assert page.url == web.url + "/"
        await web.shot(page, "02-live-preview")

        await page.get_by_role("button", name="Email me a link to start").click()
        await expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
        await web.shot(page, "03-check-your-inbox")

        (confirmation,) = await web.mail(1)
        assert confirmation.to == ADDRESS
        await page.goto(confirm_link(confirmation, "confirm"))
        await expect(page.get_by_role("heading", name="Start your alert?")).to_be_visible()
        assert await web.store.subscriptions.all() == []  # opening the link only asks
        await web.shot(page, "04-confirm")
        await page.get_by_role("button", name="Start my alert").click()
        await expect(page.get_by_role("status")).to_contain_text("Your alert is on.")
        (sub,) = await web.store.subscriptions.all()
        await web.shot(page, "05-your-alerts")

        # A new matching posting through Kafka: the alert email arrives.
        await web.matching(sub.id)
        first = {
            "kind": "posting",
            "id": "web-e2e-1",
            "employer": "NORDSTROM",
            "title": "Loss Prevention Lead",
            "city": "Portland",
            "url": "https://jobs.example.com/web-e2e-1",
        }
        await web.publish(tmp_path, first)
        alert = (await web.mail(2))[1]
        assert alert.to == ADDRESS
        assert alert.subject == "New job: Loss Prevention Lead at NORDSTROM, Portland"
        unsubscribe = confirm_link(alert, "unsubscribe")

        # Another browser: "email me a link", then manage from the link.
        context = await browser.new_context()
        try:
            other = await context.new_page()
            await other.goto(web.url + "/manage")
            await expect(other.get_by_role("heading", name="Manage your alerts")).to_be_visible()
            await other.get_by_label("Email address").fill(ADDRESS)
            await other.get_by_role("button", name="Email me a link").click()
            await expect(other.get_by_role("heading", name="Check your inbox")).to_be_visible()
            await web.shot(other, "06-sign-in-link-sent")
            sign_in = (await web.mail(3))[2]
            await other.goto(confirm_link(sign_in, "sign-in"))
            await web.shot(other, "07-sign-in")
            await other.get_by_role("button", name="Sign in").click()
            await expect(other.get_by_role("status")).to_contain_text("You are signed in.")
            alerts = other.get_by_role("region", name="The last alerts")
            await expect(alerts).to_contain_text("Loss Prevention Lead at NORDSTROM, Portland")
            await expect(alerts).to_contain_text("Sent")
            await web.shot(other, "08-manage")

            await other.get_by_role("button", name="Pause").click()
            await expect(other.get_by_role("status")).to_contain_text("Paused")
            await expect(other.locator(".badge")).to_have_text("Paused")
            await web.shot(other, "09-paused")

            await web.matching(sub.id, wanted=False)
            await web.publish(tmp_path, {**first, "id": "web-e2e-2", "title": "Store Detective"})
            await web.recorded(("posting", "web-e2e-2"))
            rows = await web.store.ledger.recent(subscription_id=sub.id)
            assert [r.event_id for r in rows] == ["web-e2e-1"]  # nothing for the paused one
            assert len(web.smtp.messages) == 3

            await other.get_by_role("button", name="Resume").click()
            await expect(other.locator(".badge")).to_have_text("On")
        finally:
            await context.close()

        # One click from the alert's link: the page asks, its button (a POST) unsubscribes.
        await page.goto(unsubscribe)
        await expect(page.get_by_role("heading", name="Unsubscribe?")).to_be_visible()
        current = await web.store.subscriptions.get(sub.id)
        assert current is not None
        assert current.active
        await web.shot(page, "10-unsubscribe")
        await page.get_by_role("button", name="Unsubscribe").click()
        await expect(page.get_by_role("heading", name="Unsubscribed")).to_be_visible()
        await web.shot(page, "11-unsubscribed")
        current = await web.store.subscriptions.get(sub.id)
        assert current is not None
        assert not current.active
    print(f"journey in the browser: {time.monotonic() - started:.1f} s")


async def test_the_page_works_with_javascript_off(
    kafka: KafkaBroker, browser: Browser, tmp_path: Path, screens: Path
) -> None:
    context = await browser.new_context(java_script_enabled=False)
    try:
        page = await context.new_page()
        async with site(kafka, tmp_path, screens) as web:
            await page.goto(web.url + "/")
            # Without the script, the Preview button asks the server, as a plain form.
            await page.get_by_label("Employers").fill("MACY'S")
            await page.get_by_role("button", name="Preview matches").click()
            await expect(page.locator("#preview")).to_contain_text("6 events")
            assert await page.get_by_label("Employers").input_value() == "MACY'S"
            await web.shot(page, "01-preview-without-script")

            # Errors come back next to their fields, in words.
            await page.get_by_label("Email address").fill("ana@")
            await page.get_by_label("Employers").fill("")
            await page.get_by_role("button", name="Email me a link to start").click()
            summary = page.get_by_role("alert")
            await expect(summary).to_contain_text("2 things to fix")
            await expect(page.locator("#f-email-error")).to_contain_text(
                "Type a whole email address"
            )
            await expect(page.locator("#f-employers-error")).to_contain_text(
                "Type at least one employer, job title or city"
            )
            await expect(page.get_by_label("Email address")).to_have_attribute(
                "aria-invalid", "true"
            )
            await web.shot(page, "02-errors")

            await page.get_by_label("Email address").fill(ADDRESS)
            await page.get_by_label("Employers").fill("MACY'S")
            await page.get_by_role("button", name="Email me a link to start").click()
            await expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
            (mail,) = await web.mail(1)
            await page.goto(confirm_link(mail, "confirm"))
            await page.get_by_role("button", name="Start my alert").click()
            await expect(page.get_by_role("status")).to_contain_text("Your alert is on.")
            await web.shot(page, "03-your-alerts")
            (sub,) = await web.store.subscriptions.all()
            assert sub.employers == ["MACY'S"]
    finally:
        await context.close()


EVIL = "<script>document.title='pwned'</script>"


async def test_input_and_events_are_escaped_and_target_secrets_never_shown(
    kafka: KafkaBroker, page: Page, tmp_path: Path, screens: Path
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    async with site(kafka, tmp_path, screens) as web:
        await web.publish(
            tmp_path,
            {
                "kind": "posting",
                "id": "evil-1",
                "employer": f"{EVIL} Corp",
                "title": "<img src=x onerror=alert(1)> Clerk",
                "city": "Portland",
                "url": "javascript:alert(2)",
            },
        )
        await web.recorded(("posting", "evil-1"))
        await page.goto(web.url + "/")
        await page.get_by_label("Employers").fill(f"{EVIL} Corp")
        preview = page.locator("#preview")
        await expect(preview).to_contain_text("1 event of the last 7 days matches")
        await expect(preview).to_contain_text(f"{EVIL} Corp, Portland")  # shown as text
        await expect(preview).to_contain_text("<img src=x onerror=alert(1)> Clerk")
        assert await preview.locator("a").count() == 0  # a javascript: link is not a link
        await page.get_by_label("Email address").fill(ADDRESS)
        await page.get_by_label("Name of this alert").fill(EVIL)
        await page.get_by_role("button", name="Email me a link to start").click()
        await web.shot(page, "01-after-sign-up")
        (mail,) = await web.mail(1)
        await page.goto(confirm_link(mail, "confirm"))
        await page.get_by_role("button", name="Start my alert").click()
        await expect(page.get_by_role("heading", name=EVIL)).to_be_visible()

        (sub,) = await web.store.subscriptions.all()
        secret = "tok3n-do-not-show"
        await page.goto(f"{web.url}/manage/subscriptions/{sub.id}")
        await page.get_by_label("Add a chat or webhook").fill(
            f"json://bot:{secret}@127.0.0.1:9/hook?token={secret}"
        )
        await page.get_by_role("button", name="Add", exact=True).click()
        await expect(page.get_by_role("status")).to_contain_text("Added")
        await web.shot(page, "02-edit-with-target")
        for path in ("/manage", f"/manage/subscriptions/{sub.id}", "/"):
            await page.goto(web.url + path)
            assert secret not in await page.content()
            assert await page.title() != "pwned"
        await expect(page.get_by_label("Employers")).to_have_value("")
    assert dialogs == []


UNLABELED = """
[...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
  .map(el => el.name)
"""
PAGES = ["/", "/sign-in", "/manage", "/manage/subscriptions/{id}", "/manage/new"]


async def test_every_page_fits_a_phone_and_is_used_by_keyboard(
    kafka: KafkaBroker, browser: Browser, tmp_path: Path, screens: Path
) -> None:
    context = await browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    try:
        page = await context.new_page()
        async with site(kafka, tmp_path, screens) as web:
            # By keyboard alone: Tab reaches the fields in the order they are read.
            await page.goto(web.url + "/")
            order = []
            for _ in range(6):
                await page.keyboard.press("Tab")
                order.append(
                    await page.evaluate(
                        "document.activeElement.name || document.activeElement.textContent.trim()"
                    )
                )
            assert order == [
                "Skip to the content",
                "jobwire",
                "Manage your alerts",
                "email",
                "employers",
                "titles",
            ]
            await page.keyboard.press("Shift+Tab")
            await page.keyboard.type("Nordstrom")
            await expect(page.get_by_label("Employers")).to_have_value("Nordstrom")
            await page.get_by_label("Email address").focus()
            await page.keyboard.type(ADDRESS)
            await page.keyboard.press("Enter")  # submits with the first button: sign up
            await expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
            (mail,) = await web.mail(1)
            await page.goto(confirm_link(mail, "confirm"))
            await page.get_by_role("button", name="Start my alert").focus()
            await page.keyboard.press("Enter")
            await expect(page.get_by_role("status")).to_contain_text("Your alert is on.")
            (sub,) = await web.store.subscriptions.all()
            await web.matching(sub.id)
            await web.publish(
                tmp_path,
                {
                    "kind": "posting",
                    "id": "phone-1",
                    "employer": "NORDSTROM",
                    "title": "A very long title " * 8,
                    "city": "Portland",
                },
            )
            await web.mail(2)

            for n, path in enumerate(PAGES, start=1):
                await page.goto(web.url + path.format(id=sub.id))
                width = await page.evaluate(
                    "[document.documentElement.scrollWidth, window.innerWidth]"
                )
                assert width[0] <= width[1], (path, width)
                # Every form control has a name a screen reader says.
                unlabeled = await page.evaluate(UNLABELED)
                assert unlabeled == [], path
                shown = path.strip("/").replace("/", "-").replace("{id}", "edit") or "home"
                await web.shot(page, f"{n:02d}-phone-{shown}")
    finally:
        await context.close()
