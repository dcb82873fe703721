"""Fixtures shared by every test: sample events and per-test settings."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from config.settings import ApiSettings, KafkaSettings, Settings, StoreSettings, TargetSettings
from consumers.events import AnyEvent, Event
from devstack.postgres import PostgresServer, running_postgres
from service.store import Store

SAMPLES = Path(__file__).resolve().parents[1] / "devstack" / "samples" / "events.jsonl"


@pytest.fixture(autouse=True, scope="session")
def loggers_follow_each_configuration() -> Iterator[None]:
    """jobwire caches each logger's configuration at its first line (`service/logs.py`), which
    is right for a process configured once, but a test session configures logging many times
    (every in-process `jobwire` command does): a logger first used under one test's
    configuration kept it, and a later test's `capture_logs` missed its lines. Here loggers
    are never cached."""

    configure = structlog.configure

    def uncached(*args: object, **kwargs: object) -> None:
        configure(*args, **{**kwargs, "cache_logger_on_first_use": False})  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(structlog, "configure", uncached)
        yield


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A real PostgreSQL server for this test session, on a free loopback port."""
    with running_postgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def sample_lines() -> list[dict[str, object]]:
    return [orjson.loads(line) for line in SAMPLES.read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def sample_events(sample_lines: list[dict[str, object]]) -> list[Event]:
    return [AnyEvent.validate_python(line) for line in sample_lines]


async def empty_database(url: str) -> None:
    """Drop everything in a PostgreSQL database, the migrations' own table included, so a test
    starts from a store that has never been migrated."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@asynccontextmanager
async def sqlite_store_with(file: Path, table: str) -> AsyncIterator[Store]:
    """A new SQLite store at `file` with one table of the test's own (`CREATE TABLE …`), for
    tests of the store's machinery rather than of jobwire's tables; closed afterwards."""
    opened = await Store.open(f"sqlite+aiosqlite:///{file}")
    async with opened.engine.begin() as conn:
        await conn.execute(text(table))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def store_of_each_kind(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Store]:
    """A new store, once on the embedded SQLite and once on the scale-out PostgreSQL: what
    holds for one must hold for the other."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'jobwire.db'}"
    else:
        url = request.getfixturevalue("postgres").url
        await empty_database(url)
    opened = await Store.open(url, auto_migrate=True)
    yield opened
    await opened.close()


def make_settings(tmp_path: Path, bootstrap: str = "127.0.0.1:9", **kafka: object) -> Settings:
    """Settings for one test: its own store file, topics and consumer group."""
    suffix = tmp_path.name.replace("_", "-")
    return Settings(
        kafka=KafkaSettings.model_validate(
            {
                "bootstrap_servers": bootstrap,
                "postings_topic": f"postings-{suffix}",
                "articles_topic": f"articles-{suffix}",
                "dead_letter_topic": f"dead-{suffix}",
                "group_id": f"jobwire-{suffix}",
                "batch_timeout_ms": 200,
                **kafka,
            }
        ),
        store=StoreSettings(
            url=f"sqlite+aiosqlite:///{tmp_path / 'jobwire.db'}", refresh_interval_s=0.2
        ),
        # Every running service serves its API, each on a free port.
        api=ApiSettings(port=0),
        # The tests' sinks listen on loopback, which the target policy refuses by default.
        targets=TargetSettings(allow_private_hosts=True),
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], within_s: float = 60.0, every_s: float = 0.1
) -> None:
    """Wait until `check` holds, for state that offers nothing to await (ledger rows)."""
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {within_s} s")
        await asyncio.sleep(every_s)


async def sign_up_on_the_page(browser: httpx.AsyncClient, email: str) -> httpx.Response:
    """Sign up for Nordstrom's postings as a person does on the page served at `browser`'s
    base URL: open it, and send its form with its CSRF token."""
    page = await browser.get("/")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return await browser.post(
        "/signup",
        data={
            "csrf": found[1],
            "email": email,
            "action": "signup",
            "employers": "Nordstrom",
            "kinds": ["posting"],
        },
    )
