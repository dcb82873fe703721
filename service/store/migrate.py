"""Alembic, run by jobwire: which revision a store is at, upgrading it, adopting old stores.

Every instance that starts checks the store's revision against the newest this code knows.
Upgrading runs in one transaction (PostgreSQL and SQLite both roll DDL back), and on PostgreSQL
under an advisory lock, so instances started together (`docker compose up --scale jobwire=3`)
wait for the first one instead of racing on `CREATE TABLE`. A store made by `create_all` before
migrations existed has its tables but no revision: it is stamped with the first revision, which
is exactly that schema, and upgraded from there, never recreated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import TypeEngine

from service.store.engine import migration_engine
from service.store.errors import StoreUnavailable
from service.store.schema import metadata

log = structlog.get_logger("jobwire.store")

MIGRATIONS = Path(__file__).with_name("migrations")
FIRST = "0001"
# pg_advisory_xact_lock key: any constant that no other application on the database uses.
LOCK_KEY = int.from_bytes(b"jobwire\x00", "big") >> 1
# Tables a store made before migrations has; finding them without a revision means "adopt".
_ADOPTABLE = {"subscriptions", "events", "deliveries", "users", "service_secrets"}


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    found = scripts().get_current_head()
    assert found is not None  # there is always a first revision
    return found


def history() -> list[Script]:
    """Every revision, newest first."""
    return list(scripts().walk_revisions())


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a store's schema stands against the code."""

    current: str | None
    head: str
    # Tables made by `create_all` before migrations existed, and no revision recorded.
    adoptable: bool = False
    empty: bool = False

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def known(self) -> bool:
        """False when the store is at a revision this code does not have (a newer jobwire's)."""
        if self.current is None:
            return True
        try:
            return scripts().get_revision(self.current) is not None
        except Exception:  # alembic raises for unknown ids
            return False

    def describe(self) -> str:
        if self.current is not None:
            return f"revision {self.current}"
        return "empty" if self.empty else "made before migrations (no revision)"


def _state(conn: Connection) -> SchemaState:
    tables = set(inspect(conn).get_table_names())
    current = MigrationContext.configure(conn).get_current_revision()
    return SchemaState(
        current=current,
        head=head(),
        adoptable=current is None and tables >= _ADOPTABLE,
        empty=current is None and not (tables & _ADOPTABLE),
    )


async def state(engine: AsyncEngine) -> SchemaState:
    async with engine.connect() as conn:
        return await conn.run_sync(_state)


@asynccontextmanager
async def _migrating(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction for a whole migration, that no other instance's migration interleaves."""
    own = migration_engine(engine.url) if engine.dialect.name == "sqlite" else None
    try:
        async with (own or engine).begin() as conn:
            if conn.dialect.name == "postgresql":
                # Held until this transaction ends: a second instance waits here, then finds
                # the schema current and has nothing to do.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            yield conn
    finally:
        if own is not None:
            await own.dispose()


async def upgrade(engine: AsyncEngine, target: str = "head") -> tuple[SchemaState, str | None]:
    """Bring the store to `target`; returns where it was and the revision it is at now."""
    async with _migrating(engine) as conn:
        return await conn.run_sync(_upgrade, target)


def _upgrade(conn: Connection, target: str) -> tuple[SchemaState, str | None]:
    before = _state(conn)
    if not before.known:
        raise StoreUnavailable(too_new(before))
    cfg = config(conn)
    if before.adoptable:
        log.info("store.adopted", revision=FIRST, reason="tables made before migrations")
        command.stamp(cfg, FIRST)
    command.upgrade(cfg, target)
    after = MigrationContext.configure(conn).get_current_revision()
    if after != before.current:
        log.info("store.migrated", before=before.current, after=after)
    return before, after


async def downgrade(engine: AsyncEngine, target: str) -> str | None:
    """Undo revisions down to `target` (e.g. "-1"); returns the revision now current."""
    async with _migrating(engine) as conn:
        return await conn.run_sync(_downgrade, target)


def _downgrade(conn: Connection, target: str) -> str | None:
    command.downgrade(config(conn), target)
    after = MigrationContext.configure(conn).get_current_revision()
    log.info("store.migrated", after=after, direction="down")
    return after


async def differences(engine: AsyncEngine) -> list[object]:
    """What the models (schema.py) have that the migrations do not make, or the reverse:
    empty when every model change came with its migration (`alembic check`)."""
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": _collation_differs}),
                metadata,
            )
        )


def _collation_differs(
    context: MigrationContext,
    found_column: object,
    model_column: object,
    found_type: TypeEngine[object],
    model_type: TypeEngine[object],
) -> bool | None:
    """Alembic's type comparison, which does not look at a string's collation, and the
    collation too (schema.key: byte order on PostgreSQL, from migration 0009)."""
    wanted = getattr(model_type.dialect_impl(context.dialect), "collation", None)
    if wanted != getattr(found_type, "collation", None):
        return True
    return None  # Alembic's own comparison decides


async def ensure_current(engine: AsyncEngine, auto_migrate: bool) -> None:
    """Start only on a current schema: upgrade it when allowed, else say what to run."""
    found = await state(engine)
    if found.up_to_date:
        return
    if not found.known:
        raise StoreUnavailable(too_new(found))
    if auto_migrate:
        await upgrade(engine)
        return
    raise StoreUnavailable(
        f"the store's schema is {found.describe()} and this jobwire needs revision "
        f"{found.head}: run `jobwire db upgrade` (back up first, see docs/operations.md), or set "
        "JOBWIRE_STORE__AUTO_MIGRATE=true to upgrade at start"
    )


def too_new(found: SchemaState) -> str:
    return (
        f"the store's schema is at revision {found.current}, newer than this jobwire knows "
        f"(newest {found.head}): run the jobwire version that upgraded it, or downgrade the "
        "store with that version's `jobwire db downgrade`"
    )
