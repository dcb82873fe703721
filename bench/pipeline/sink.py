"""Driving the sink process (loopback_sink.py) over its stdin."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .processes import Children

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Arrival:
    kind: str  # "h" an HTTP request, "m" a mail
    at_ns: int  # wall clock at the sink
    marker: int  # the number after "bt" in the alert, 0 if none


class Sink:
    """The sink process (loopback_sink.py: HTTP and SMTP on loopback), driven over its stdin."""

    def __init__(self, children: Children, workdir: Path) -> None:
        self._workdir = workdir
        self.proc = children.spawn(
            [sys.executable, str(HERE / "loopback_sink.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError(f"the sink did not start (it said {ready!r})")
        self.http_port, self.smtp_port = int(ready[1]), int(ready[2])
        self._takes = 0

    def command(self, line: str) -> str:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer: str = self.proc.stdout.readline().strip()
        if not answer or answer.startswith("ERROR"):
            raise RuntimeError(f"the sink answered {answer!r} to {line!r}")
        return answer

    def hold(self) -> None:
        self.command("hold")

    def open(self) -> None:
        self.command("open")

    def take(self) -> list[Arrival]:
        """What arrived since the last take."""
        self._takes += 1
        path = self._workdir / f"sink-take-{self._takes}.txt"
        self.command(f"take {path}")
        arrivals = []
        for line in path.read_text().splitlines():
            kind, at_ns, marker = line.split()
            arrivals.append(Arrival(kind, int(at_ns), int(marker)))
        path.unlink()
        return arrivals

    def json_url(self, path: str) -> str:
        # rto: Apprise's read timeout (4 s by default) must outlast a parked send.
        return f"json://127.0.0.1:{self.http_port}/{path}?rto=600"

    def mail_url(self, n: int) -> str:
        # cto: Apprise's SMTP socket timeout (15 s by default) must outlast a parked send.
        return (
            f"mailto://127.0.0.1:{self.smtp_port}?from=jobwire@example.com"
            f"&to=user{n}@example.com&cto=600"
        )

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
