"""`make run` as a new user sees it: the demo starts everything and the sample alerts arrive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_shows_the_sample_alerts_then_stops(tmp_path: Path) -> None:
    # What `make run` runs, with --no-keep-running so it stops once the alerts are in.
    done = subprocess.run(
        [sys.executable, "-m", "devstack.demo", "--workdir", str(tmp_path), "--no-keep-running"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    told = done.stderr
    assert "📧 EMAIL to ana@example.com: New job: Asset Protection" in told
    assert "💬 CHAT /ben" in told
    assert "2 emails (saved as .eml files in" in told
    assert "2 chat messages arrived." in told
    assert told.rstrip().endswith("jobwire demo: stopped")
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 2
