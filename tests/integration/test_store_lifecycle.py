"""The store as operators meet it: instances starting together, and every way it can refuse.

Each refusal must be one line that names the fix, with no traceback. The read-only and full
disk cases are real: the store's directory is mounted read-only, or on a tiny tmpfs that is then
filled, inside a private mount namespace of the command (unshare), so nothing outside changes.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer
from service.store import Store, migrate
from tests.conftest import empty_database, make_settings
from tests.integration.conftest import JOBWIRE, listening_url, service_env, start_jobwire

pytestmark = pytest.mark.integration


def in_private_mounts(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a mount namespace of its own (as root, or as root of a user
    namespace when not), so it may mount without touching the machine's mounts."""
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return subprocess.run(
        ["unshare", *user, "--mount", "--propagation", "private", "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("jobwire: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def sqlite_env(directory: Path) -> dict[str, str]:
    return {**os.environ, "JOBWIRE_STORE__URL": f"sqlite+aiosqlite:///{directory}/jobwire.db"}


SUBSCRIBE = f"{shlex.quote(str(JOBWIRE))} subscribe --employer ACME --notify json://example.com/a"


def test_a_read_only_store_says_so_in_one_line(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    subprocess.run([str(JOBWIRE), "db", "upgrade"], env=env, check=True, capture_output=True)
    done = in_private_mounts(f"mount --bind -o ro {tmp_path} {tmp_path} && {SUBSCRIBE}", env)
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    assert "is read-only: give the user running jobwire write access" in line


def test_a_full_disk_says_so_in_one_line(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    upgrade = f"{shlex.quote(str(JOBWIRE))} db upgrade"
    done = in_private_mounts(
        f"mount -t tmpfs -o size=400k tmpfs {tmp_path} && {upgrade} 2>/dev/null && "
        f"(dd if=/dev/zero of={tmp_path}/filler bs=4k 2>/dev/null; true) && {SUBSCRIBE}",
        env,
    )
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    assert "is full: free space" in line


def test_run_refuses_a_store_newer_than_the_code_in_one_line(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    subprocess.run([str(JOBWIRE), "db", "upgrade"], env=env, check=True, capture_output=True)
    with sqlite3.connect(tmp_path / "jobwire.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    done = subprocess.run(
        [str(JOBWIRE), "run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "revision 9999, newer than this jobwire knows" in line


async def test_on_postgresql_run_refuses_an_outdated_schema_and_names_the_command(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    await empty_database(postgres.url)
    engine = Store.connect(postgres.url)
    await migrate.upgrade(engine, migrate.FIRST)
    await engine.dispose()
    env = {**os.environ, "JOBWIRE_STORE__URL": postgres.url, "JOBWIRE_API__PORT": "0"}
    done = await asyncio.to_thread(
        subprocess.run, [str(JOBWIRE), "run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"schema is revision {migrate.FIRST}" in line
    assert "run `jobwire db upgrade`" in line
    upgraded = await asyncio.to_thread(
        subprocess.run, [str(JOBWIRE), "db", "upgrade"], env=env, capture_output=True, text=True
    )
    assert (
        upgraded.stdout.strip()
        == f"upgraded the store from revision 0001 to revision {migrate.head()}"
    )


async def test_three_instances_starting_at_once_on_an_empty_postgresql_all_come_up(
    kafka: KafkaBroker, postgres: PostgresServer, tmp_path: Path
) -> None:
    await empty_database(postgres.url)
    settings = make_settings(tmp_path, kafka.bootstrap)
    settings.store.url = postgres.url
    env = {**service_env(settings), "JOBWIRE_STORE__AUTO_MIGRATE": "true"}
    logs = [tmp_path / f"jobwire-{n}.log" for n in range(3)]
    processes = [start_jobwire(env, log) for log in logs]
    try:
        urls = await asyncio.gather(*(listening_url(log) for log in logs))
        async with httpx.AsyncClient() as client:
            for url in urls:
                assert (await client.get(f"{url}/healthz")).status_code == 200
        migrated = [log.read_text().count('"store.migrated"') for log in logs]
        assert sorted(migrated) == [0, 0, 1]  # one migrated; the others waited and found it done
        engine = Store.connect(postgres.url)
        async with engine.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        await engine.dispose()
        assert version == [(migrate.head(),)]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
