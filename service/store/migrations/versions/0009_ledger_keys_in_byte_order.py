"""On PostgreSQL, the ledger's and the events' keys compare byte by byte (collation "C").

Those columns hold identifiers (an event's kind and id, an alert's status), never words for
people, yet they were compared by the database's default collation. On a database created
with a language's locale, as the official `postgres` image and Debian's clusters create them
(`en_US.UTF-8`), every comparison in their indexes went through the C library's locale rules:
PostgreSQL took a fan-out-100 batch's ledger rows about a third slower than on a "C" database
(bench/bench_pg_locale.py). With collation "C" the locale no longer matters.

The type does not change, so the table is not rewritten; PostgreSQL rebuilds the indexes that
hold these columns, once per table, under a lock that holds the ledger's writes meanwhile
(seconds for a million rows). SQLite compares text byte by byte already: nothing changes there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# (table, column, length): every column these keys are compared with is in the list (events'
# with the ledger's), so no comparison mixes two collations, which PostgreSQL refuses.
KEYS = (
    ("events", "kind", 16),
    ("events", "id", 200),
    ("deliveries", "event_kind", 16),
    ("deliveries", "event_id", 200),
    ("deliveries", "status", 16),
)


def _collate(collation: str) -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table in dict.fromkeys(table for table, _, _ in KEYS):
        # One statement per table, so each index is rebuilt once.
        changes = ", ".join(
            f'ALTER COLUMN {column} TYPE varchar({length}) COLLATE "{collation}"'
            for name, column, length in KEYS
            if name == table
        )
        op.execute(f"ALTER TABLE {table} {changes}")


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    _collate("default")
