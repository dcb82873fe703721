"""The benchmarks `make bench` runs still run to the end (their figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_api_benchmark_runs_every_row() -> None:
    # It once stopped part-way: after 600 requests (3 s a row is well past them), jobwire's
    # per-key request limit answered 429.
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_api.py"), "--seconds", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for row in ("GET /healthz", "POST /subscriptions", "GET /subscriptions/{id}", "PATCH"):
        assert row in done.stdout
