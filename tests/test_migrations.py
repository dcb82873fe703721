"""Alembic owns the schema, on SQLite and on PostgreSQL: fresh stores, old stores, both ways."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from consumers.events import Event
from devstack.postgres import SUPERUSER, PostgresServer
from service.store import Match, Store, StoreUnavailable, migrate
from service.store.subscriptions import OwnerLimitReached
from service.subscriptions import SubscriptionIn
from tests.conftest import empty_database

FIXTURES = Path(__file__).with_name("fixtures")
TARGET = "json://hooks.example.com/alerts"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty store of each kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'jobwire.db'}"
    else:
        found: str = request.getfixturevalue("postgres").url
        await empty_database(found)
        yield found


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = Store.connect(url)
    yield engine
    await engine.dispose()


async def execute_script(engine: AsyncEngine, sql: str) -> None:
    async with engine.begin() as conn:
        for statement in sql.split(";"):
            body = "\n".join(
                line for line in statement.splitlines() if not line.startswith("--")
            ).strip()
            if body:
                await conn.execute(text(body))


# One row in every table, written with plain SQL as the schema of revision 0001 has it.
ROWS_0001 = """
INSERT INTO subscriptions (id, owner, name, employers, titles, cities, exclude, kinds, notify,
    active, deleted, created_at, updated_at)
VALUES ('a0000000000000000000000000000001', 'u0000000000000000000000000000001', 'AP jobs',
    '["NORDSTROM"]', '[]', '["Portland"]', '[]', '["posting"]', '["json://hooks.example.com/a"]',
    true, false, '2026-11-01 08:00:00', '2026-11-01 08:00:00');
INSERT INTO events (kind, id, payload, received_at)
VALUES ('posting', 'fj-1', '{"id": "fj-1", "kind": "posting", "employer": "NORDSTROM",
    "title": "Asset Protection Agent", "city": "Portland"}', '2026-11-01 08:00:01');
INSERT INTO deliveries (subscription_id, event_kind, event_id, target, status, attempts,
    next_attempt_at, created_at)
VALUES ('a0000000000000000000000000000001', 'posting', 'fj-1', 'json://hooks.example.com/a',
    'pending', 0, '2026-11-01 08:00:01', '2026-11-01 08:00:01');
INSERT INTO users (id, name, key_hash, created_at)
VALUES ('u0000000000000000000000000000001', 'ana', 'aaaa', '2026-11-01 07:00:00');
INSERT INTO service_secrets (name, value) VALUES ('unsubscribe-signing', 'kept-secret');
"""


async def assert_rows_of_0001_survived(store: Store) -> None:
    (sub,) = await store.subscriptions.all()
    assert (sub.name, sub.employers, sub.owner) == (
        "AP jobs",
        ["NORDSTROM"],
        "u0000000000000000000000000000001",
    )
    (pending,) = await store.ledger.recent()
    assert (pending.event_id, pending.status) == ("fj-1", "pending")
    # The row's subscription, read through its target since 0008 took the ledger's copy away.
    assert pending.subscription_id == "a0000000000000000000000000000001"
    claimed = await store.ledger.claim(10, lease_s=60)
    assert [c.event.id for c in claimed] == ["fj-1"]  # the old event still renders the alert
    user = await store.accounts.by_key_hash("aaaa")
    assert user is not None
    assert user.name == "ana"
    # The owner's count starts from the rows there were (0014): the limit sees the old one.
    assert await store.subscriptions.count("u0000000000000000000000000000001") == 1
    assert await store.secrets.get_or_create("unsubscribe-signing", "new") == "kept-secret"


async def test_a_new_store_is_created_at_the_newest_revision_and_matches_the_models(
    url: str, engine: AsyncEngine
) -> None:
    assert (await migrate.state(engine)).empty
    store = await Store.open(url, auto_migrate=True)
    await store.close()
    found = await migrate.state(engine)
    assert found.current == migrate.head()
    assert found.up_to_date
    # `alembic check`: a model change in schema.py without its migration fails here.
    assert await migrate.differences(engine) == []


async def test_upgrading_from_the_first_revision_keeps_every_row(
    url: str, engine: AsyncEngine
) -> None:
    await migrate.upgrade(engine, migrate.FIRST)
    await execute_script(engine, ROWS_0001)

    store = await Store.open(url, auto_migrate=True)
    try:
        assert (await migrate.state(engine)).up_to_date
        await assert_rows_of_0001_survived(store)
    finally:
        await store.close()


async def test_downgrading_one_step_and_upgrading_again_keeps_every_row(
    url: str, engine: AsyncEngine, sample_events: list[Event]
) -> None:
    store = await Store.open(url, auto_migrate=True)
    sub = await store.subscriptions.add(
        SubscriptionIn.model_validate({"employers": ["NORDSTROM"], "notify": [TARGET]}),
        owner="ana",
        max_owned=2,
    )
    await store.ledger.record(sample_events[:3], [Match(sub.id, sample_events[0], sub.target_ids)])
    await store.close()

    before = migrate.head()
    after_down = await migrate.downgrade(engine, "-1")
    assert after_down != before
    await migrate.upgrade(engine)
    assert (await migrate.state(engine)).current == before
    assert await migrate.differences(engine) == []

    store = await Store.open(url)
    try:
        assert [s.id for s in await store.subscriptions.all()] == [sub.id]
        (claimed,) = await store.ledger.claim(10, lease_s=60)
        assert claimed.event.id == sample_events[0].id
        # The owner's limit still holds: one more, then none.
        await store.subscriptions.add(
            SubscriptionIn.model_validate({"employers": ["Ross"], "notify": [TARGET]}),
            owner="ana",
            max_owned=2,
        )
        with pytest.raises(OwnerLimitReached):
            await store.subscriptions.add(
                SubscriptionIn.model_validate({"employers": ["Macy's"], "notify": [TARGET]}),
                owner="ana",
                max_owned=2,
            )
    finally:
        await store.close()


async def test_ledger_rows_keep_their_subscription_across_0008_both_ways(
    url: str, engine: AsyncEngine, sample_events: list[Event]
) -> None:
    """0008 drops the ledger's copy of each row's subscription (its target names it); going
    back to 0007 fills the copy in again from the targets."""
    store = await Store.open(url, auto_migrate=True)
    sub = await store.subscriptions.add(
        SubscriptionIn.model_validate({"employers": ["NORDSTROM"], "notify": [TARGET]})
    )
    await store.ledger.record(sample_events[:1], [Match(sub.id, sample_events[0], sub.target_ids)])
    await store.close()

    await migrate.downgrade(engine, "0007")
    async with engine.connect() as conn:
        copied = (await conn.execute(text("SELECT subscription_id FROM deliveries"))).all()
    assert copied == [(sub.id,)]

    await migrate.upgrade(engine)
    assert await migrate.differences(engine) == []
    store = await Store.open(url)
    try:
        (row,) = await store.ledger.recent(subscription_id=sub.id)
        assert row.subscription_id == sub.id
        (claimed,) = await store.ledger.claim(10, lease_s=60)
        assert claimed.delivery.subscription_id == sub.id
        assert claimed.subscription_name == sub.name
    finally:
        await store.close()


@pytest.fixture
async def language_locale_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A PostgreSQL database whose default collation is a language's (ICU's en-US, which
    Debian's PostgreSQL always has), as most clusters are made; dropped afterwards."""
    server: PostgresServer = request.getfixturevalue("postgres")
    admin = create_async_engine(
        f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{server.port}/postgres",
        isolation_level="AUTOCOMMIT",
    )
    async with admin.connect() as conn:
        await conn.execute(text("DROP DATABASE IF EXISTS jobwire_en_us"))
        await conn.execute(
            text(
                "CREATE DATABASE jobwire_en_us TEMPLATE template0 LOCALE_PROVIDER icu "
                "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8' OWNER jobwire"
            )
        )
    try:
        yield server.url.rsplit("/", 1)[0] + "/jobwire_en_us"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text("DROP DATABASE jobwire_en_us WITH (FORCE)"))
        await admin.dispose()


@pytest.mark.integration
async def test_on_a_database_with_a_languages_locale_event_keys_still_compare_byte_by_byte(
    language_locale_url: str,
) -> None:
    """0009: a language's collation made the ledger's indexes a third slower, for keys that
    are identifiers. An old store upgraded there still finds, claims and renders its alerts:
    no comparison between the events and the ledger mixes two collations."""
    engine = Store.connect(language_locale_url)
    try:
        await migrate.upgrade(engine, migrate.FIRST)
        await execute_script(engine, ROWS_0001)
        store = await Store.open(language_locale_url, auto_migrate=True)
        try:
            await assert_rows_of_0001_survived(store)
        finally:
            await store.close()
        assert await migrate.differences(engine) == []
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO events (kind, id, payload, received_at) VALUES "
                    "('posting', 'a-2', '{}', now()), ('posting', 'B-3', '{}', now())"
                )
            )
            ids = (await conn.execute(text("SELECT id FROM events ORDER BY id"))).scalars()
            # Byte order puts capitals first; en-US would say a-2, B-3, fj-1.
            assert list(ids) == ["B-3", "a-2", "fj-1"]
    finally:
        await engine.dispose()


async def test_a_store_made_before_migrations_is_stamped_and_upgraded_not_recreated(
    url: str, engine: AsyncEngine
) -> None:
    dialect = engine.dialect.name
    legacy = (FIXTURES / f"schema-before-migrations.{dialect}.sql").read_text()
    await execute_script(engine, legacy)
    await execute_script(engine, ROWS_0001)
    found = await migrate.state(engine)
    assert found.adoptable
    assert found.current is None

    store = await Store.open(url, auto_migrate=True)
    try:
        await assert_rows_of_0001_survived(store)
    finally:
        await store.close()
    assert (await migrate.state(engine)).up_to_date
    assert await migrate.differences(engine) == []


async def test_without_auto_migrate_an_outdated_store_is_refused_naming_the_command(
    url: str, engine: AsyncEngine
) -> None:
    await migrate.upgrade(engine, migrate.FIRST)
    with pytest.raises(StoreUnavailable) as refused:
        await Store.open(url, auto_migrate=False)
    message = str(refused.value)
    assert f"revision {migrate.FIRST}" in message
    assert "run `jobwire db upgrade`" in message
    assert "\n" not in message


@pytest.mark.integration
async def test_postgresql_does_not_migrate_at_start_unless_told_to(postgres_url: str) -> None:
    with pytest.raises(StoreUnavailable, match="store's schema is empty"):
        await Store.open(postgres_url)  # auto_migrate unset: off on PostgreSQL
    store = await Store.open(postgres_url, auto_migrate=True)
    await store.close()


async def test_a_store_newer_than_the_code_is_refused(url: str, engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    for auto in (True, False):
        with pytest.raises(StoreUnavailable, match="revision 9999, newer than this jobwire knows"):
            await Store.open(url, auto_migrate=auto)


@pytest.fixture
async def postgres_url(request: pytest.FixtureRequest) -> str:
    found: str = request.getfixturevalue("postgres").url
    await empty_database(found)
    return found


async def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'jobwire.db'}")
    await store.close()
    assert (tmp_path / "jobwire.db").stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(tmp_path / "jobwire.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            migrate.head(),
        )
