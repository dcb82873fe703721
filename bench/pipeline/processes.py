"""Processes the benchmark starts, how to stop them, and the CPU they use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def say(text: str) -> None:
    print(text, flush=True)


class Children:
    """Every process this benchmark starts, so that each one is stopped however the run ends."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[Any]] = []

    def spawn(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        # A session of its own: a Ctrl-C reaches only us, and we stop the children in order.
        proc: subprocess.Popen[Any] = subprocess.Popen(list(argv), start_new_session=True, **kwargs)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        alive = [p for p in self._procs if p.poll() is None]
        for proc in alive:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in alive:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()


async def stop_process(
    proc: subprocess.Popen[Any], then: Callable[[], None] | None = None, grace: float = 30.0
) -> None:
    """SIGTERM (jobwire's clean stop), `then` (e.g. let the sink answer), SIGKILL after grace."""
    if proc.poll() is None:
        proc.terminate()
    if then is not None:
        then()
    try:
        await asyncio.to_thread(proc.wait, grace)
    except subprocess.TimeoutExpired:
        say(f"    (pid {proc.pid} did not stop within {grace:g} s: killed)")
        proc.kill()
        await asyncio.to_thread(proc.wait)


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU (user + system) the processes `pids` have used so far, read from /proc; a process
    already gone counts nothing."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CpuMeter.TICK


class CpuMeter:
    """CPU used by some processes over a window, in % of one core, read from /proc; and by
    everything else on the machine ("others"): other work on a shared machine is noise."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pids: dict[str, Callable[[], list[int]]]) -> None:
        self._pids = pids
        self._start: dict[str, float] = {}
        self._machine = 0.0
        self._started = 0.0

    def start(self) -> None:
        self._start = {name: cpu_seconds(pids()) for name, pids in self._pids.items()}
        self._machine = self._machine_busy()
        self._started = time.perf_counter()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._started
        used = {
            name: 100 * (cpu_seconds(pids()) - self._start.get(name, 0.0)) / elapsed
            for name, pids in self._pids.items()
        }
        machine = 100 * (self._machine_busy() - self._machine) / elapsed
        used["others"] = max(0.0, machine - sum(used.values()))
        return used

    @classmethod
    def _machine_busy(cls) -> float:
        """CPU seconds all cores spent on anything but idle and iowait."""
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / cls.TICK


def children_of(parent: int) -> list[int]:
    """`parent` and every process below it (a PostgreSQL server and its backends; jobwire and
    its sending processes, which multiprocessing starts through a server of its own)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])  # ppid
    found = [parent]
    for pid in found:  # grows while it is walked: breadth first down the tree
        found.extend(child for child, ppid in parents.items() if ppid == pid)
    return found


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"
