"""Digests and quiet hours: a schedule per subscription, digest rows in the ledger.

Existing subscriptions become instant, as they were; existing ledger rows are not digests.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(
            sa.Column("frequency", sa.String(8), nullable=False, server_default="instant")
        )
        batch.add_column(sa.Column("at", sa.String(5), nullable=False, server_default="08:00"))
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"))
        batch.add_column(
            sa.Column("weekday", sa.String(9), nullable=False, server_default="monday")
        )
        batch.add_column(sa.Column("quiet_hours", sa.String(11)))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("digest", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("digest_id", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("digest_id")
        batch.drop_column("digest")
    with op.batch_alter_table("subscriptions") as batch:
        for column in ("quiet_hours", "weekday", "timezone", "at", "frequency"):
            batch.drop_column(column)
