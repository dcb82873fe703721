"""A throwaway PostgreSQL server on loopback, for tests and demos.

``start_postgres()`` runs ``initdb`` into a fresh directory and starts a private server on
127.0.0.1 and a free port, with a database ``jobwire`` owned by role ``jobwire`` (password
``jobwire``; authentication is ``trust`` anyway, the server is reachable only from this
machine). Durability is switched off (``fsync``, ``full_page_writes``,
``synchronous_commit``): the data is thrown away, and a test suite should not wait on disks.

It uses the server binaries of the machine (``initdb``, ``pg_ctl``, ``postgres``): on Debian
and Ubuntu ``apt-get install postgresql`` puts them in ``/usr/lib/postgresql/<version>/bin``.
Nothing else is needed, in particular no Docker and no system cluster.

PostgreSQL refuses to run as root. When this process is root (a CI container), the server
runs as the ``postgres`` user that the Debian package creates, and its files belong to it.

    python -m devstack.postgres            # prints JOBWIRE_STORE__URL=...; Ctrl-C stops it
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
DATABASE = USER = PASSWORD = "jobwire"
SUPERUSER = "postgres"
# Debian's package puts each major version's server binaries here, outside PATH.
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
# Speed over durability: the cluster lives for one test session or one demo.
SERVER_SETTINGS = {
    "listen_addresses": LOOPBACK,
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "logging_collector": "off",
}
# The kernel limit on a unix socket path (sun_path, 108 bytes with the NUL), less the
# "/.s.PGSQL.NNNNN" file name that PostgreSQL appends.
MAX_SOCKET_DIR = 107 - len("/.s.PGSQL.65535")
START_TIMEOUT_S = 60
PORT_ATTEMPTS = 3
# pg_ctl start/stop return once the server accepts connections / has exited.
WAIT = ("-w", "-t", str(START_TIMEOUT_S))
# --no-sync: the cluster is disposable, and syncing its files to disk costs seconds.
INITDB = ("--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")


@dataclass
class PostgresServer:
    """A running throwaway server; ``url`` is ready for SQLAlchemy's async engine."""

    port: int
    datadir: Path
    url: str  # postgresql+asyncpg://jobwire:jobwire@127.0.0.1:PORT/jobwire
    bindir: Path = field(repr=False)
    logfile: Path = field(repr=False)
    _run_as: pwd.struct_passwd | None = field(default=None, repr=False)
    _remove: Path | None = field(default=None, repr=False)  # a directory we created
    _stopped: bool = field(default=False, repr=False)

    @property
    def dsn(self) -> str:
        """The same server as a libpq/asyncpg DSN (no SQLAlchemy driver prefix)."""
        return f"postgresql://{USER}:{PASSWORD}@{LOOPBACK}:{self.port}/{DATABASE}"

    def halt(self) -> None:
        """Stop the server as an outage would (open sessions are ended), keeping its files
        for `restart`."""
        _run(
            [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast", *WAIT],
            self._run_as,
            cwd=self.datadir.parent,
        )

    def restart(self) -> None:
        """Start a halted server again, on the same port; returns once it accepts connections."""
        start = ["start", "-D", str(self.datadir), "-l", str(self.logfile), "-o", f"-p {self.port}"]
        _run([str(self.bindir / "pg_ctl"), *start, *WAIT], self._run_as, cwd=self.datadir.parent)

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and remove its files.

        Files are removed only when ``start_postgres`` created the directory itself; a
        ``workdir`` the caller passed is left in place with the stopped cluster inside.
        """
        if self._stopped:
            return
        self._stopped = True
        try:
            _run(
                [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast", *WAIT],
                self._run_as,
                cwd=self.datadir.parent,
            )
        finally:
            if self._remove is not None:
                shutil.rmtree(self._remove, ignore_errors=True)


def start_postgres(workdir: Path | None = None) -> PostgresServer:
    """Initialise and start a private PostgreSQL server; the caller must ``stop()`` it.

    ``workdir`` holds ``data/`` (the cluster), ``run/`` (its unix socket) and
    ``postgres.log``; without one, a temporary directory is used and removed on ``stop()``.
    As root, if the ``postgres`` user cannot reach ``workdir`` (pytest's temporary
    directories are private to root), a temporary directory is used instead.
    Raises ``RuntimeError`` with what to do when the binaries are missing or the server
    does not come up (the end of its log included).
    """
    bindir = find_postgres_bindir()
    run_as = _server_user() if os.geteuid() == 0 else None
    remove: Path | None = None
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        workdir = workdir.resolve()
    if workdir is None or (run_as is not None and not _reachable_by(workdir, run_as)):
        workdir = remove = Path(tempfile.mkdtemp(prefix="jobwire-postgres-"))
        if run_as is not None:
            os.chown(workdir, run_as.pw_uid, run_as.pw_gid)

    datadir, rundir, logfile = workdir / "data", workdir / "run", workdir / "postgres.log"
    if datadir.exists() and any(datadir.iterdir()):
        raise RuntimeError(
            f"{datadir} already holds files; remove it or give start_postgres another workdir"
        )
    for path in (datadir, rundir):
        path.mkdir(exist_ok=True)
    # initdb insists on a private data directory.
    datadir.chmod(0o700)
    logfile.touch()
    if run_as is not None:
        for path in (datadir, rundir, logfile):
            os.chown(path, run_as.pw_uid, run_as.pw_gid)

    try:
        _initdb(bindir, datadir, rundir, run_as)
        port = _start(bindir, datadir, logfile, run_as)
        _create_database(bindir, port)
    except BaseException:
        # Whatever failed, leave no server behind and no temporary directory.
        with contextlib.suppress(RuntimeError, OSError):
            _run([str(bindir / "pg_ctl"), "stop", "-D", str(datadir), "-m", "immediate"], run_as)
        if remove is not None:
            shutil.rmtree(remove, ignore_errors=True)
        raise

    return PostgresServer(
        port=port,
        datadir=datadir,
        url=f"postgresql+asyncpg://{USER}:{PASSWORD}@{LOOPBACK}:{port}/{DATABASE}",
        bindir=bindir,
        logfile=logfile,
        _run_as=run_as,
        _remove=remove,
    )


@contextlib.contextmanager
def running_postgres(workdir: Path | None = None) -> Iterator[PostgresServer]:
    """``start_postgres`` for the length of a ``with`` block."""
    server = start_postgres(workdir)
    try:
        yield server
    finally:
        server.stop()


def find_postgres_bindir(path: str | None = None, debian_bindirs: str = DEBIAN_BINDIRS) -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    ``PATH`` first (a source build, Homebrew, the PGDG packages' alternatives), then
    Debian's per-version directories, newest version first.
    """
    search = os.environ.get("PATH", "") if path is None else path
    candidates = [Path(entry) for entry in search.split(os.pathsep) if entry]
    candidates += sorted(map(Path, glob.glob(debian_bindirs)), key=_version_key, reverse=True)
    for directory in candidates:
        if all(os.access(directory / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or in "
        f"{debian_bindirs}: install them with `apt-get install postgresql` (Debian/Ubuntu), "
        "or put the directory that holds initdb on PATH"
    )


def _version_key(bindir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin → (15,); numerically, so 9.6 sorts below 10.
    return tuple(int(part) for part in re.findall(r"\d+", str(bindir)))


def _server_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise RuntimeError(
            "PostgreSQL refuses to run as root and there is no `postgres` user to run it as: "
            "`apt-get install postgresql` creates one, or run the tests as a normal user"
        ) from None


def _reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` may enter the directory ``path`` and every one above it."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for directory in [path, *path.parents]:
        info = directory.stat()
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


def _initdb(bindir: Path, datadir: Path, rundir: Path, run_as: pwd.struct_passwd | None) -> None:
    _run(
        [str(bindir / "initdb"), "-D", str(datadir), "-U", SUPERUSER, "--auth=trust", *INITDB],
        run_as,
        cwd=datadir.parent,
    )
    settings = dict(SERVER_SETTINGS)
    # The socket lives with the cluster, so no system directory (/var/run/postgresql) is
    # touched; only if the path is too long for the kernel is the socket left out, since
    # every client here connects over TCP.
    settings["unix_socket_directories"] = str(rundir) if len(str(rundir)) <= MAX_SOCKET_DIR else ""
    lines = "".join(f"{key} = '{value}'\n" for key, value in settings.items())
    with (datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n# devstack.postgres: a throwaway server for tests\n" + lines)


def _start(bindir: Path, datadir: Path, logfile: Path, run_as: pwd.struct_passwd | None) -> int:
    """Start the server on a free port; the port it listens on."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = _free_port()
        log_offset = logfile.stat().st_size
        try:
            start = ["start", "-D", str(datadir), "-l", str(logfile), "-o", f"-p {port}", *WAIT]
            _run([str(bindir / "pg_ctl"), *start], run_as, cwd=datadir.parent)
            return port
        except RuntimeError as error:
            log = _read_from(logfile, log_offset)
            # The port was free when picked but another process took it before the
            # server bound it; another port fixes that, anything else would fail again.
            if "could not bind" in log and attempt < PORT_ATTEMPTS:
                continue
            raise RuntimeError(
                f"PostgreSQL did not start: {error}\n--- end of the server log ---\n{_tail(log)}"
            ) from None
    raise AssertionError("unreachable")


def _create_database(bindir: Path, port: int) -> None:
    # The psql of the same build: next to initdb, or next to what initdb links to (PATH
    # may hold only symlinks to the server tools), else whichever psql PATH has.
    beside = [bindir / "psql", (bindir / "initdb").resolve().parent / "psql"]
    psql = next((p for p in beside if os.access(p, os.X_OK)), Path(shutil.which("psql") or "psql"))
    # Separate -c commands: CREATE DATABASE refuses to run inside a transaction block.
    sql = (
        *("-X", "-q", "-v", "ON_ERROR_STOP=1"),
        *("-c", f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'"),
        *("-c", f"CREATE DATABASE {DATABASE} OWNER {USER}"),
    )
    _run(
        [str(psql), "-h", LOOPBACK, "-p", str(port), "-U", SUPERUSER, "-d", "postgres", *sql],
        None,
    )


def _run(command: Sequence[str], run_as: pwd.struct_passwd | None, cwd: Path | None = None) -> None:
    """Run a PostgreSQL tool, as ``run_as`` when given; RuntimeError with its output if it fails."""
    # PGHOST, PGPORT, PGDATA... of the caller's shell must not redirect the tools.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    if run_as is not None:
        env["HOME"] = run_as.pw_dir
    try:
        # Output goes to a file, not a pipe: pg_ctl leaves a daemon behind, and a daemon
        # that inherited the pipe would keep it open and make this wait forever.
        with tempfile.TemporaryFile() as output:
            result = subprocess.run(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                check=False,
                timeout=START_TIMEOUT_S + 30,
                # subprocess switches user in the child before exec: what `runuser -u
                # postgres` does, without util-linux or an extra process in between.
                user=run_as.pw_uid if run_as else None,
                group=run_as.pw_gid if run_as else None,
                extra_groups=[] if run_as else None,
            )
            output.seek(0)
            text = output.read().decode(errors="replace").strip()
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{Path(command[0]).name} did not finish in time") from None
    if result.returncode != 0:
        raise RuntimeError(
            f"{Path(command[0]).name} failed (exit {result.returncode}): {_tail(text)}"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.postgres",
        description="Run a throwaway PostgreSQL server for jobwire until Ctrl-C.",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where the cluster lives (default: a temporary directory)"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    server = start_postgres(args.workdir)
    try:
        print(
            f"PostgreSQL on {LOOPBACK}:{server.port}, data in {server.datadir}, "
            f"up in {time.monotonic() - started:.1f} s; Ctrl-C stops it",
            file=sys.stderr,
        )
        # stdout carries only the setting, so `eval "$(... | head -1)"`-style use works.
        print(f"JOBWIRE_STORE__URL={server.url}", flush=True)
        stop = threading.Event()
        # Ctrl-C, and SIGTERM from a supervisor or `kill`, both stop it cleanly. Set
        # explicitly: a shell starting this in the background (`... &`) ignores SIGINT.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        stop.wait()
    finally:
        server.stop()
        print("PostgreSQL stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
