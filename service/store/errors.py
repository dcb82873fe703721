"""Store failures as one line that says what to do: what the operator sees, never a traceback.

The store is SQLite or PostgreSQL behind SQLAlchemy; their errors arrive wrapped in
SQLAlchemy's and mention SQL. `explain` reads the database's own error beneath and names the
cause and the fix; the CLI prints it, `jobwire run` refuses to start with it, and the running
service logs it when the store goes away mid-run.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from service.store.crypto import SecretsLocked


class StoreUnavailable(Exception):
    """The store cannot be used; the message says what to check (password hidden)."""


def shown(url: str | URL) -> str:
    """The store's URL as it may be shown: the password masked."""
    return make_url(url).render_as_string(hide_password=True)


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return found


def explain(exc: BaseException, url: str | URL | None = None) -> str:
    """One line naming why the store failed and what to do about it."""
    where = f" at {shown(url)}" if url is not None else ""
    for cause in _causes(exc):
        if isinstance(cause, StoreUnavailable | SecretsLocked):
            return str(cause)
        if isinstance(cause, sqlite3.Error):
            return _sqlite(str(cause).lower(), where, url)
        code = getattr(cause, "sqlstate", None)
        if code == "53100":
            return (
                f"PostgreSQL's disk is full{where}: free space, or shorten "
                "JOBWIRE_RETENTION__* so less is kept"
            )
        if code == "25006":
            return (
                f"PostgreSQL{where} is read-only (a standby, or default_transaction_read_only): "
                "point JOBWIRE_STORE__URL at the primary"
            )
        if code == "55P03":
            return (
                f"a batch's write to PostgreSQL{where} waited too long for rows another "
                "transaction held (lock_timeout) and gave up; the batch is read again. If this "
                "repeats, look in pg_stat_activity for a transaction left open"
            )
        if code in {"28P01", "28000"}:
            return f"PostgreSQL{where} refused the user or password in JOBWIRE_STORE__URL"
        if code == "3D000":
            return f"the database{where} does not exist: create it, or fix JOBWIRE_STORE__URL"
        if isinstance(cause, OSError) and cause.errno is not None:
            return (
                f"cannot reach the store{where} ({cause}): check that the database is up and "
                "JOBWIRE_STORE__URL"
            )
    first = str(exc).splitlines()[0] if str(exc) else ""
    return (
        f"the store{where} failed ({type(exc).__name__}: {first[:300]}); "
        "check JOBWIRE_STORE__URL and that the database is up"
    )


def _sqlite(text: str, where: str, url: str | URL | None) -> str:
    # SQLite's own words are vague about the file system ("unable to open database file",
    # "disk I/O error" when the -shm file cannot grow), so the file system is asked too.
    state = _filesystem(url) if url is not None else None
    if state == "read-only" or "readonly" in text:
        return (
            f"the store{where} is read-only: give the user running jobwire write access to the "
            "file and its directory (SQLite writes FILE-wal and FILE-shm beside it)"
        )
    if state == "full" or "disk is full" in text:
        return (
            f"the disk holding the store{where} is full: free space, or shorten "
            "JOBWIRE_RETENTION__* so less is kept, then start again"
        )
    if "unable to open database file" in text:
        return (
            f"cannot open or create the store{where}: check that the directory exists and that "
            "jobwire may write there (JOBWIRE_STORE__URL)"
        )
    if "locked" in text:
        return (
            f"the store{where} stayed locked by another process for 30 s: check for a stuck "
            "jobwire or a tool holding a write transaction"
        )
    return f"the store{where} failed (SQLite: {text[:200]}); check the file and its disk"


def _filesystem(url: str | URL) -> str | None:
    """ "read-only" or "full" when that is the state of a SQLite store's file system."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    file = Path(parsed.database)
    try:
        fs = os.statvfs(file.parent)
    except OSError:
        return None
    if fs.f_flag & os.ST_RDONLY:
        return "read-only"
    if fs.f_bavail * fs.f_frsize < 64 * 1024:  # not even a few pages free
        return "full"
    writable = os.access(file.parent, os.W_OK) and (not file.exists() or os.access(file, os.W_OK))
    return None if writable else "read-only"


def describe_failure(exc: BaseException) -> str:
    """A part's failure for the log: the store's in its one line (a store error's own text
    quotes SQL and its parameters, which may hold targets' secrets), anything else as it is."""
    from sqlalchemy.exc import SQLAlchemyError

    if any(isinstance(cause, SQLAlchemyError | StoreUnavailable) for cause in _causes(exc)):
        return explain(exc)
    return f"{type(exc).__name__}: {exc}"
