"""Ledger rows no longer copy their subscription's id: their target names it.

A target belongs to one subscription for good (a URL taken out of a subscription stays as a
`removed` target), so `targets.subscription_id` already says whose every row is. The copy was
33 bytes of each of the 50,000 rows a batch writes at fan-out 100: SQLite took a batch's rows
about 10% faster without it (docs/performance.md).

SQLite drops the column in place (SQLite 3.35 or newer, which every supported Python has),
rewriting each row once; PostgreSQL only marks it dropped.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("deliveries", "subscription_id")


def downgrade() -> None:
    op.add_column("deliveries", sa.Column("subscription_id", sa.String(32), nullable=True))
    op.execute(
        "UPDATE deliveries SET subscription_id = "
        "(SELECT subscription_id FROM targets WHERE targets.id = deliveries.target_id)"
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("subscription_id", existing_type=sa.String(32), nullable=False)
