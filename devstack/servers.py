"""What the devstack's server processes (Kafka, Synapse, Prometheus) share.

- `terminate`: SIGTERM, and SIGKILL if the server has not stopped within its grace period.
- `kill_at_exit`: a server still running when the interpreter exits (a test run that crashed,
  a Ctrl-C mid-start) is killed then, so no broker outlives the run that started it.
- `hold`: the command line's life (`python -m devstack.kafka` and the others): start the
  server, say where it is, and keep it until Ctrl-C or SIGTERM; if it dies on its own first,
  say so with the end of its log.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import subprocess
import sys
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Protocol, TypeVar

_running: weakref.WeakSet[subprocess.Popen[bytes]] = weakref.WeakSet()


def terminate(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """Stop `process` cleanly (SIGTERM), or by SIGKILL after `grace_s`; return once it is gone."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def kill_at_exit(process: subprocess.Popen[bytes]) -> None:
    """Kill `process` when the interpreter exits, if it is still running then."""
    _running.add(process)


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_running):
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.kill()


class Server(Protocol):
    process: subprocess.Popen[bytes]

    def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


def hold(
    name: str, start: Callable[[], S], announce: Callable[[S], None], log_end: Callable[[S], str]
) -> int:
    """Start a server, `announce` it, and keep it until Ctrl-C or SIGTERM (exit code 0); if it
    exits by itself first, print `log_end` of it and return 1. It is stopped either way."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Set both explicitly: a shell without job control starts `cmd &` with SIGINT ignored.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    server: S | None = None
    try:
        server = start()
        announce(server)
        code = server.process.wait()
        sys.stderr.write(f"jobwire: {name} exited with code {code}:\n{log_end(server)}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"jobwire: stopping {name}\n")
        return 0
    finally:
        if server is not None:
            # Ctrl-C again must not leave a server behind half-stopped.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            server.stop()
            sys.stderr.write(f"jobwire: {name} stopped\n")
