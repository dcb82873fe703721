"""The browser harness: a real headless Chromium fills in and submits a form served over HTTP."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from devstack.browser import launch_browser, save_screenshot

pytestmark = pytest.mark.integration

FORM = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Sign up</title></head>
<body>
  <h1>Get job alerts</h1>
  <form method="post" action="/signup">
    <label for="email">Email</label>
    <input id="email" name="email" type="email" required>
    <button type="submit">Sign up</button>
  </form>
</body></html>
"""


@dataclass
class SignupSite:
    """A tiny web site: GET / is a sign-up form, POST /signup records the address it got."""

    url: str = ""
    received: list[str] = field(default_factory=list)


@pytest.fixture
def site() -> Iterator[SignupSite]:
    state = SignupSite()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(200, FORM)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            email = form.get("email", [""])[0]
            state.received.append(email)
            page = f"<!doctype html><title>Welcome</title><p id='answer'>Welcome, {escape(email)}!"
            # Signed in: a session cookie, which no other test's page may carry.
            self._answer(200, page.encode(), cookie="session=s1; Path=/; HttpOnly")

        def _answer(self, status: int, body: bytes, cookie: str | None = None) -> None:
            self.send_response(status)
            if cookie:
                self.send_header("Set-Cookie", cookie)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test asserts on `received`, not on an access log

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}"
    # A short poll, so that shutdown() returns at once rather than after half a second.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


async def test_a_form_filled_in_and_submitted_in_chromium_reaches_the_server(
    page: Page, site: SignupSite, tmp_path: Path
) -> None:
    await page.goto(site.url)
    assert await page.title() == "Sign up"

    await page.get_by_label("Email").fill("alice@example.com")
    await page.get_by_role("button", name="Sign up").click()

    await page.wait_for_url(f"{site.url}/signup")
    assert await page.locator("#answer").inner_text() == "Welcome, alice@example.com!"
    assert site.received == ["alice@example.com"]
    assert [cookie["name"] for cookie in await page.context.cookies()] == ["session"]

    shot = await save_screenshot(page, tmp_path / "shots" / "welcome.png")
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert shot.stat().st_size > 1000


async def test_the_browser_checks_the_form_before_sending_it(page: Page, site: SignupSite) -> None:
    # A real browser enforces `required` and `type=email`: nothing reaches the server.
    await page.goto(site.url)
    await page.get_by_label("Email").fill("not an address")
    await page.get_by_role("button", name="Sign up").click()

    assert not await page.locator("#email").evaluate("field => field.checkValidity()")
    assert page.url == f"{site.url}/"
    assert site.received == []


async def test_each_test_gets_a_fresh_context_of_the_one_browser(
    browser: Browser, page: Page, site: SignupSite
) -> None:
    # The contexts of earlier tests (one of them signed in) are closed, and nothing they
    # stored (cookies, local storage) is in this one.
    assert browser.contexts == [page.context]
    await page.goto(site.url)
    assert await page.context.cookies() == []
    assert await page.evaluate("localStorage.length") == 0
    assert browser.version.split(".")[0].isdigit()


async def test_launch_browser_closes_chromium_when_the_block_ends() -> None:
    async with launch_browser() as own:
        assert own.is_connected()
        context = await own.new_context()
        await (await context.new_page()).set_content("<p>hello</p>")
    assert not own.is_connected()
