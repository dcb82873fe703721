"""The benchmarks `make bench` runs still run to the end (their figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str) -> str:
    """What `bench/<script>` printed; fails the test with its errors if it failed."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_api_benchmark_runs_every_row() -> None:
    # It once stopped part-way: after 600 requests (3 s a row is well past them), jobwire's
    # per-key request limit answered 429.
    printed = run_bench("bench_api.py", "--seconds", "3")
    for row in ("GET /healthz", "POST /subscriptions", "GET /subscriptions/{id}", "PATCH"):
        assert row in printed


def test_the_gc_pause_benchmark_measures_both_processes_each_way() -> None:
    printed = run_bench("bench_gc_pause.py", "--rounds", "1", "--sends", "50", "--requests", "30")
    assert printed.count("start-up's end (baseline)") == 2
    assert "50 sends on" in printed
    assert "30 requests on" in printed


def test_the_slow_target_benchmark_measures_both_cases_each_round() -> None:
    printed = run_bench("bench_slow_target.py", "--rounds", "1", "--backlog", "200")
    assert "no slow backlog (baseline)" in printed
    assert "behind the slow backlog" in printed
    assert "× baseline" in printed


def test_the_slow_target_benchmark_spreads_a_backlog_over_own_mail_targets() -> None:
    printed = run_bench(
        "bench_slow_target.py", "--rounds", "1", "--backlog", "100", "--own-mail", "20"
    )
    assert "20 people's own-mail targets" in printed
    assert "× baseline" in printed


def test_the_slow_target_benchmark_spreads_a_backlog_over_shared_slow_webhooks() -> None:
    printed = run_bench(
        "bench_slow_target.py",
        *("--rounds", "1", "--backlog", "100", "--delay-ms", "20"),
        *("--slow-webhooks", "2", "--subscriptions-each", "3", "--drain"),
    )
    assert "2 webhooks that answer in 20.0 ms, each the target of 3 subscriptions" in printed
    assert "the slow backlog's last alert at" in printed
    assert "× baseline" in printed


@pytest.mark.integration
def test_the_postgresql_locale_benchmark_compares_all_three_databases() -> None:
    printed = run_bench("bench_pg_locale.py", "--rounds", "1", "--batches", "1")
    summary = printed.split("× baseline", 1)[1]
    for database in ("C, newest (baseline)", "0008 (before)", "newest (after)"):
        assert summary.count(database) == 2  # fan-out 100 and fan-out 1
