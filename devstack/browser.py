"""A real headless Chromium, driven by Playwright, for tests of jobwire's web pages.

``launch_browser()`` starts Debian's ``chromium`` (installed with apt-get on first use when we
are root) through Playwright's async API and yields a Playwright ``Browser``. Starting it
costs half a second here (Playwright's driver, then Chromium: 0.5 s measured), a
fresh context costs milliseconds: share one browser per test session and give each test its
own context and page (own cookies, storage and cache), as the fixtures in
``tests/integration/conftest.py`` do::

    async with launch_browser() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto("http://127.0.0.1:8080/signup")
        await save_screenshot(page, Path("signup.png"))

Why Debian's Chromium and not Playwright's own: ``playwright install`` downloads its browsers
from a CDN, which a machine that only reaches package registries cannot. Playwright drives
any recent Chromium over the DevTools protocol; its Python package (pinned in the ``dev``
extra) brings only the driver.

Why the async API: the tests run on pytest-asyncio's one session-wide event loop, with
jobwire's web server in that same loop; the sync API would block it (Playwright refuses to
run its sync API inside a running loop at all). The browser must be launched and used from
that one loop: a session-scoped async fixture does exactly that.

Why these flags: the browser must not reach outside this machine. Without
``--disable-background-networking`` and ``--disable-component-update`` Chromium dials
Google's update, safe-browsing and variations servers at start, and on a closed network
those connections are refused (noise in its log, and a wait). Even with them (and the many
that Playwright adds), Chromium 156 still looked up accounts.google.com,
update.googleapis.com and, when a form is filled in, content-autofill.googleapis.com (seen
with ``strace -e connect,sendto``). ``--host-resolver-rules`` makes every name but the
loopback ones fail inside the browser, so no query leaves it; what remains is one UDP
``connect()`` to 2001:4860:4860::8888 that sends nothing (Chromium asks the kernel whether
IPv6 is routable). The pages under test are on loopback, so they are not affected; a page
on any other name fails with ``net::ERR_NAME_NOT_RESOLVED`` (and the error page then sends
Chromium's own DNS probe out, so keep tests on loopback).
``--no-sandbox``: Chromium will not start its sandbox as root, and in a container it lacks
the namespaces it needs. Each launch gets a fresh, temporary user-data-dir from Playwright
(no profile, no cookies from an earlier run), removed when the browser closes.

    python -m devstack.browser http://127.0.0.1:8080/ --screenshot page.png
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

from devstack.apt import ensure_command

__all__ = [
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "find_chromium",
    "launch_browser",
    "save_screenshot",
]

CHROMIUM = "/usr/bin/chromium"
"""Debian's launcher script: it execs ``/usr/lib/chromium/chromium`` with the flags of
``/etc/chromium.d``, so the process Playwright talks to is the browser itself."""

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Names resolve to nothing but loopback: see the module's doc.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
)
LAUNCH_TIMEOUT_S = 60.0


def find_chromium() -> Path:
    """Debian's ``chromium``, installed with apt-get first when it is missing."""
    return ensure_command("chromium", "chromium", path=CHROMIUM)


@contextlib.asynccontextmanager
async def launch_browser(timeout_s: float = LAUNCH_TIMEOUT_S) -> AsyncIterator[Browser]:
    """A headless Chromium for the length of an ``async with`` block, closed however it ends.

    ``browser.version`` says which Chromium it is. Raises Playwright's ``Error`` with
    Chromium's output when the browser does not start.
    """
    # apt-get may run here, for a minute: not on the event loop.
    executable = await asyncio.to_thread(find_chromium)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            chromium_sandbox=False,
            timeout=timeout_s * 1000,
        )
        try:
            yield browser
        finally:
            await browser.close()


async def save_screenshot(page: Page, path: Path, *, full_page: bool = True) -> Path:
    """A PNG of ``page`` (the whole page, not just the viewport, by default) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=path, full_page=full_page, type="png")
    return path


async def _visit(url: str, screenshot: Path | None) -> None:
    started = time.monotonic()
    async with launch_browser() as browser:
        launched = time.monotonic() - started
        print(f"Chromium {browser.version}, launched in {launched:.2f} s", file=sys.stderr)
        context = await browser.new_context()
        page = await context.new_page()
        response = await page.goto(url)
        status = response.status if response else "no response"
        print(f"{url}: {status}, title {await page.title()!r}")
        if screenshot is not None:
            print(f"screenshot: {await save_screenshot(page, screenshot)}")
        await context.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.browser",
        description="Open a page in the headless Chromium the tests use; print what it got.",
    )
    parser.add_argument("url")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the page here")
    args = parser.parse_args(argv)
    asyncio.run(_visit(args.url, args.screenshot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
