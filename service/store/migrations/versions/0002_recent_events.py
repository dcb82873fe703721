"""Recent events, searchable and prunable: events.search and two indexes.

Every consumed event is now kept (not only matched ones): `events.search` holds its normalized
words, an index on `received_at` finds a time window, and one on the ledger's event columns
lets retention ask which events a delivery still needs.

Events stored before this revision have no `search` text; the recent-events query checks those
in full, and retention removes them within JOBWIRE_RETENTION__EVENTS_DAYS.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("search", sa.Text()))
    op.create_index("ix_events_received_at", "events", ["received_at"])
    op.create_index("ix_deliveries_event", "deliveries", ["event_kind", "event_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_event", "deliveries")
    op.drop_index("ix_events_received_at", "events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("search")
