"""py-spy recording one process for a window: a speedscope file and a summary."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .processes import say
from .stack import Stack

PY_SPY = "py-spy==0.4.3"


class Profiler:
    """py-spy recording one process for a window: a speedscope file and a summary.

    Only samples of the thread holding the GIL are kept (`--gil`): jobwire's Python work is
    serialised by it, so they add up to where its time goes, and their total says how much of
    the window the interpreter was busy. (Without it, py-spy counts threads waiting on a
    queue in C as busy, which buries the work.) Native work that releases the GIL (SQLite
    executing a statement, TLS, the Rust matcher if it released it) does not show.
    `--nonblocking` reads jobwire's memory without pausing it, so sampling costs it little;
    now and then a stack is torn, which does not matter for a summary.
    """

    RATE = 100
    FLAGS = ("--gil", "--function", "--nonblocking")

    def __init__(self, stack: Stack, name: str) -> None:
        self.enabled = stack.options.profile
        round_ = f"-{stack.round}" if stack.options.repeat > 1 else ""
        self.path = (
            stack.options.workdir / "profiles" / f"{stack.store}-{name}{round_}.speedscope.json"
        )
        self._children = stack.children
        self._proc: subprocess.Popen[Any] | None = None
        self._started = 0.0

    def start(self, pid: int) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._proc = self._children.spawn(
            [
                *(str(py_spy()), "record", "--pid", str(pid), "--rate", str(self.RATE)),
                *self.FLAGS,
                *("--format", "speedscope", "--output", str(self.path)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._started = time.perf_counter()

    async def stop(self) -> str | None:
        """Stop sampling; the summary, or None when not profiling."""
        if self._proc is None:
            return None
        elapsed = time.perf_counter() - self._started
        self._proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        await asyncio.to_thread(self._proc.wait, 60)
        if not self.path.is_file():
            assert self._proc.stderr is not None
            return f"    py-spy wrote no profile: {self._proc.stderr.read().decode()[-2000:]}"
        return summarise(self.path, elapsed)


def py_spy() -> Path:
    binary = Path(sys.executable).with_name("py-spy")
    if not binary.is_file():
        say(f"installing {PY_SPY} into {Path(sys.executable).parent.parent} for --profile")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", PY_SPY], check=True)
    return binary


def summarise(path: Path, seconds: float, top: int = 15) -> str:
    """How much of the window the GIL was held; the functions with the most samples of their
    own (what the interpreter was running), then jobwire's own functions by the samples spent
    in them and their callees (which step of the pipeline that time belongs to)."""
    profile = json.loads(path.read_text())
    frames = profile["shared"]["frames"]
    own: Counter[int] = Counter()
    total: Counter[int] = Counter()
    samples = 0
    for thread in profile["profiles"]:
        for stack in thread["samples"]:
            if not stack:
                continue
            samples += 1
            own[stack[-1]] += 1
            for index in set(stack):
                total[index] += 1
    if not samples:
        return "    (no samples)"

    def line(index: int) -> str:
        frame = frames[index]
        where = f"{short_path(frame.get('file', '?'))}:{frame.get('line', '?')}"
        return (
            f"    {100 * own[index] / samples:>5.1f}% {100 * total[index] / samples:>5.1f}%  "
            f"{frame['name']} ({where})"
        )

    busy = 100 * samples / (Profiler.RATE * seconds)
    lines = [
        f"    GIL held in {busy:.0f}% of {seconds:.1f} s ({samples:,} samples); by own samples:",
        f"    {'own':>6} {'total':>6}  function",
        *(line(index) for index, _ in own.most_common(top)),
        "    jobwire's functions by total samples:",
    ]
    jobwire = [i for i in total if short_path(frames[i].get("file", "")).startswith(JOBWIRE)]
    lines += [line(i) for i in sorted(jobwire, key=lambda i: -total[i])[:top]]
    return "\n".join(lines)


JOBWIRE = ("service/", "consumers/", "config/")


def short_path(path: str) -> str:
    """Where a function lives, without the virtualenv's, the checkout's or the interpreter's
    prefix (so jobwire's own modules read service/..., consumers/..., in any checkout)."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    own = re.search(r"/((?:service|consumers|config)/[^/].*)$", path)
    if own:
        return own.group(1)
    return re.sub(r"^.*/lib/python3\.\d+/", "", path)
