"""`make run` as a new user sees it: the demo starts everything, the sample alerts arrive, and
the web page it prints shows the sample events in its preview."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from devstack.browser import save_screenshot
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def test_the_demo_shows_the_sample_alerts_and_its_web_page_then_stops(
    tmp_path: Path, page: Page
) -> None:
    told_path = tmp_path / "demo.err"
    with told_path.open("wb") as told_file:
        # What `make run` runs.
        demo = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "devstack.demo", "--workdir", str(tmp_path / "demo")),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=told_file,
        )
    try:
        found: list[str] = []

        async def page_printed() -> bool:
            text = told_path.read_text(errors="replace")
            found[:] = re.findall(r"🌐 The web page: (http://\S+/)", text)
            return bool(found) or demo.returncode is not None

        await eventually(page_printed, within_s=240)
        assert found, told_path.read_text()[-3000:]
        await page.goto(found[0])
        await expect(page.get_by_role("heading", name="Latest events")).to_be_visible()
        await expect(page.locator("#preview li.event")).to_have_count(23)
        await page.get_by_label("Employers").fill("NORDSTROM")
        await page.get_by_label("Cities").fill("Portland")
        await expect(page.locator("#preview")).to_contain_text("2 events of the last 7 days")
        await save_screenshot(page, tmp_path / "screens" / "demo-page.png")
    finally:
        demo.send_signal(signal.SIGINT)
        await asyncio.wait_for(demo.wait(), 60)
    assert demo.returncode == 0
    told = told_path.read_text()
    assert "📧 EMAIL to ana@example.com: New job: Asset Protection" in told
    assert "💬 CHAT /ben" in told
    assert "2 emails (saved as .eml files in" in told
    assert "2 chat messages arrived." in told
    assert "📧 DIGEST to dee@example.com: " in told  # the daily digest, sent at once
    assert "new postings for 'Ross Stores, daily'" in told
    assert told.rstrip().endswith("jobwire demo: stopped")
    assert len(list((tmp_path / "demo" / "mail").glob("*.eml"))) == 3
