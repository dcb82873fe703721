"""Meta-alerts remember whom they told: one row per target told it died.

So "at most one dead notice per target a day" holds across instances and restarts, not only
within one process.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "target_notices",
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("dead_notified_at", sa.DateTime(), nullable=False),
        sa.Column("recovered_notified", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("target_id"),
    )


def downgrade() -> None:
    op.drop_table("target_notices")
