"""The throwaway PostgreSQL server: up on loopback, reachable with jobwire's URL, gone after."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from devstack.postgres import find_postgres_bindir, running_postgres, start_postgres

pytestmark = pytest.mark.integration


def _accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_jobwire_connects_with_the_url_it_is_given() -> None:
    server = start_postgres()
    try:
        assert server.url == f"postgresql+asyncpg://jobwire:jobwire@127.0.0.1:{server.port}/jobwire"
        engine = create_async_engine(server.url)
        async with engine.connect() as connection:
            assert await connection.scalar(text("select 1")) == 1
            who = await connection.execute(text("select current_user, current_database()"))
            assert who.one() == ("jobwire", "jobwire")
            # jobwire owns its database, so it can create its tables.
            await connection.execute(text("create table probe (id int primary key)"))
        await engine.dispose()
    finally:
        server.stop()

    assert not _accepts_connections(server.port)
    assert not server.datadir.exists()


def test_a_given_workdir_keeps_the_stopped_cluster_and_its_log() -> None:
    # Not tmp_path: pytest makes that private to root, and the server may run as `postgres`.
    workdir = Path(tempfile.mkdtemp(prefix="jobwire-test-"))
    workdir.chmod(0o755)
    try:
        with running_postgres(workdir) as server:
            assert server.datadir == workdir / "data"
            assert _accepts_connections(server.port)
        assert not _accepts_connections(server.port)
        assert (workdir / "data" / "PG_VERSION").exists()
        assert "database system is shut down" in (workdir / "postgres.log").read_text()
    finally:
        shutil.rmtree(workdir)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to `postgres`")
def test_as_root_a_workdir_postgres_cannot_enter_is_replaced(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with running_postgres(private / "pg") as server:
        assert not server.datadir.is_relative_to(private)
        assert _accepts_connections(server.port)
    assert not server.datadir.exists()


def test_without_postgresql_installed_the_error_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="apt-get install postgresql"):
        find_postgres_bindir(path=str(tmp_path), debian_bindirs=str(tmp_path / "*" / "bin"))
