"""Each target says what its sends go through beside its own URL (`targets.sent_via`).

Everyone who signed up on the web page has a target of their own, and all of those go through
the operator's one mail server. When that server is slow, the delivery worker's claim must
pass over all of them at once, not one target at a time, or their backlog fills the places the
worker holds claimed sends in and everyone else's alerts wait behind it. The store cannot tell
those targets by their URL where it is sealed, so the answer is kept beside it.

The column starts empty (NULL): a target's URL may be sealed, and only the running service
holds the keys to open it. The first start after this revision fills it in, in batches
(`Subscriptions.fill_sent_via` in service/store/subscriptions.py); until then those targets
are limited as before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    kind = sa.String(16).with_variant(sa.String(16, collation="C"), "postgresql")
    op.add_column("targets", sa.Column("sent_via", kind, nullable=True))
    op.create_index("ix_targets_sent_via", "targets", ["sent_via"])


def downgrade() -> None:
    op.drop_index("ix_targets_sent_via", table_name="targets")
    with op.batch_alter_table("targets") as batch:  # SQLite drops a column by copying
        batch.drop_column("sent_via")
