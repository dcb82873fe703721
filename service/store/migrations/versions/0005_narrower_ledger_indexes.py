"""The ledger's subscription index goes: rows are found through their target.

Every index is paid for on each ledger row a batch writes (50,000 at fan-out 100); queries by
subscription go through the subscription's few targets and the index by target instead.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_subscription_id", "deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_subscription_id", "deliveries", ["subscription_id"])
