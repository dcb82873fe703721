"""Debian packages that the test harnesses need, installed with apt-get on first use.

A harness calls ``ensure_command("promtool", "prometheus")``: when the command is on ``PATH``
(or at the path given) nothing happens; otherwise, as root, ``apt-get install`` puts it there,
and as anyone else a ``RuntimeError`` says which package to install. This is what
``devstack/install.sh`` does for Java and PostgreSQL, moved next to the harness that needs the
package, so that a test command on a fresh machine installs only what the tests it runs use.

``--no-install-recommends``: Debian's ``prometheus`` recommends ``prometheus-node-exporter``
(a second daemon) and ``chromium`` recommends fonts and desktop integration; the harnesses
need neither. On a machine run by systemd, the ``prometheus`` package also enables and starts
its own system service (0.0.0.0:9090); the harness never uses it (its servers listen on free
loopback ports), and ``systemctl disable --now prometheus`` stops it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["ensure_command"]

# Another process (a parallel test run, another developer's apt-get) may hold dpkg's lock;
# apt-get waits for it this long instead of failing at once.
LOCK_WAIT_S = 600
# Two harnesses installing at once in one test session: the second waits for the first here,
# then finds its command installed (apt's own lock would make it fail, not wait, on old apt).
_LOCK_FILE = Path("/tmp/jobwire-apt.lock")


def ensure_command(command: str, package: str, *, path: str | None = None) -> Path:
    """The absolute path of ``command``, installing Debian's ``package`` first when missing.

    ``path``, when given, is where the package puts the command (checked before ``PATH``:
    ``/usr/bin/chromium`` is found even when ``PATH`` is trimmed). Raises ``RuntimeError``
    with the command to run when the package is missing and this process is not root, or
    when apt-get fails (the end of its output included).
    """
    found = _find(command, path)
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(
            f"{command} is not installed: run `sudo apt-get install --no-install-recommends "
            f"{package}` (Debian/Ubuntu), or run the tests as root so they install it"
        )
    with _LOCK_FILE.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _find(command, path)
        if found is None:
            _install(package)
            found = _find(command, path)
    if found is None:
        raise RuntimeError(
            f"apt-get installed {package} but {command} is still not found"
            + (f" at {path}" if path else " on PATH")
            + ": check `dpkg -L "
            + package
            + "`"
        )
    return found


def _find(command: str, path: str | None) -> Path | None:
    if path is not None and os.access(path, os.X_OK):
        return Path(path)
    which = shutil.which(command)
    return Path(which) if which else None


def _install(package: str) -> None:
    sys.stderr.write(f"jobwire: installing the Debian package {package} (first run only)\n")
    sys.stderr.flush()
    started = time.monotonic()
    install = [
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        f"DPkg::Lock::Timeout={LOCK_WAIT_S}",
        package,
    ]
    result = _apt(install)
    if result.returncode != 0:
        # A fresh container has no package lists, and old lists name versions that the
        # mirror no longer has: fetch them, then try once more.
        update = _apt(["apt-get", "update", "-q", "-o", f"DPkg::Lock::Timeout={LOCK_WAIT_S}"])
        if update.returncode != 0:
            raise RuntimeError(
                f"apt-get update failed (exit {update.returncode}):\n{_tail(update)}"
            )
        result = _apt(install)
    if result.returncode != 0:
        raise RuntimeError(
            f"apt-get install {package} failed (exit {result.returncode}):\n{_tail(result)}"
        )
    sys.stderr.write(f"jobwire: {package} installed in {time.monotonic() - started:.0f} s\n")


def _apt(command: list[str]) -> subprocess.CompletedProcess[str]:
    # Never a question on a terminal (debconf), never an open stdin to wait on.
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _tail(result: subprocess.CompletedProcess[str], lines: int = 20) -> str:
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-lines:])
