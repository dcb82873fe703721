"""Alembic's environment for jobwire's store.

jobwire runs migrations itself (`service/store/migrate.py`: `jobwire db upgrade`, and
`jobwire run` when JOBWIRE_STORE__AUTO_MIGRATE is on) and hands this module the connection it
opened, inside the transaction that holds the migration lock. The `alembic` command of a
developer (alembic.ini at the top of the repository) opens one from JOBWIRE_STORE__URL instead.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from service.store.schema import metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most of a table: Alembic rebuilds it (copy, drop, rename) instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_settings() -> None:
    from config.settings import load_settings

    url = context.config.get_main_option("sqlalchemy.url") or load_settings().store.url
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit(
        "jobwire's migrations run against a database; offline (--sql) is not supported"
    )
connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    asyncio.run(run_from_settings())
