"""`bench_pipeline.py --versus`: another revision really runs its own code, and the side-by-side
table says which run went first in each pair (the bias it corrects for)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from pipeline.builds import build_of, remove_worktrees  # noqa: E402
from pipeline.figures import Figure, Latency, compare_builds  # noqa: E402
from pipeline.stack import Options, Stack, Topics, jobwire_settings  # noqa: E402


def test_a_revision_runs_from_its_own_worktree_not_this_checkout(tmp_path: Path) -> None:
    build = build_of("HEAD", tmp_path)
    try:
        assert build.worktree is not None
        # A mark only the worktree's code has: if the wrapper ran this checkout's (the
        # editable install), it would not print it.
        init = build.worktree / "service" / "__init__.py"
        init.write_text(init.read_text() + "\nprint('running the revision under test')\n")
        shown = subprocess.run(
            [str(build.executable), "--help"], capture_output=True, text=True, timeout=120
        )
        assert shown.returncode == 0, shown.stderr
        assert "running the revision under test" in shown.stdout
        assert "run" in shown.stdout  # jobwire's own help, its commands listed
    finally:
        remove_worktrees([build])
    assert not build.worktree.exists()


def test_a_build_that_is_neither_file_nor_revision_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no-such-revision is neither an executable nor"):
        build_of("no-such-revision", tmp_path)


def latency(p99: float, arrived: float) -> Figure:
    lat = Latency(1000, 1000, 100, arrived, 0, 0, p50=p99 / 2, p95=p99, p99=p99, max=p99)
    return Figure("latency100", "latency", p99, "ms", latency=lat)


@pytest.mark.parametrize("old_first", [True, False])
def test_the_side_by_side_table_marks_who_ran_first_and_its_bias(
    old_first: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    # Four rounds, the order swapped each round. Both builds read 20% higher when first: the
    # table shows it, and the new build's mean over the old's is 1.5.
    high, low = 1200.0, 1000.0
    old = [high, low, high, low] if old_first else [low, high, low, high]
    rate = {"old": old, "new": [1.5 * v * (1.2 if v == low else 1 / 1.2) for v in old]}
    rounds = {
        build: {
            "webhook32": [Figure("webhook32", "webhooks", v, "alerts/s") for v in values],
            "latency100": [latency(20.0, 100.0)] * 4,
        }
        for build, values in rate.items()
    }
    compare_builds("sqlite", "old", "new", rounds, baseline_first=old_first)
    printed = capsys.readouterr().out
    (webhooks,) = [line for line in printed.splitlines() if "webhook32 (alerts/s)" in line]
    if old_first:
        assert "1,200*, 1,000, 1,200*, 1,000" in webhooks
        assert "1,500, 1,800*, 1,500, 1,800*" in webhooks
    else:
        assert "1,000, 1,200*, 1,000, 1,200*" in webhooks
        assert "1,800*, 1,500, 1,800*, 1,500" in webhooks
    assert webhooks.split()[-2:] == ["1.50x", "1.20x"]
    (p99,) = [line for line in printed.splitlines() if "latency100 p99" in line]
    assert p99.split()[-2:] == ["1.00x", "1.00x"]


def test_a_setting_given_with_set_reaches_every_jobwire_and_a_typo_is_refused(
    tmp_path: Path,
) -> None:
    """`--set kafka__batch_max_records=500`: how this stop's table of batch sizes is measured.
    A misspelt name would silently measure the default, so it is refused, named."""
    assert jobwire_settings(["kafka__batch_max_records=500", "DELIVERY__CONCURRENCY=8"]) == {
        "kafka__batch_max_records": "500",
        "delivery__concurrency": "8",
    }
    for wrong in [
        "kafka__batch_max_record=500",
        "kafka_batch_max_records=500",
        "kafka__batch_max_records",
    ]:
        with pytest.raises(ValueError, match=f"--set {wrong}: not one of jobwire's settings"):
            jobwire_settings([wrong])

    options = Options([], [], 1.0, 1, False, [], tmp_path, {"delivery__concurrency": "8"})
    stack = Stack(options, None, SimpleNamespace(bootstrap="127.0.0.1:9"), None, None)  # type: ignore[arg-type]
    env = stack.env("sqlite://", Topics("p", "a", "d", "g"), delivery__concurrency="32")
    assert env["JOBWIRE_DELIVERY__CONCURRENCY"] == "8"  # over the row's own choice
    # But not over the parked jobwire's, which fills a ledger with one send held at the sink.
    parked = stack.parked_env("sqlite://", Topics("p", "a", "d", "g"))
    assert parked["JOBWIRE_DELIVERY__CONCURRENCY"] == "1"
