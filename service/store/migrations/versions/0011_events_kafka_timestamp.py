"""Each recent event keeps its Kafka timestamp (`events.kafka_timestamp_ms`).

An alert's latency (`jobwire_delivery_latency_seconds`) runs from its event's Kafka timestamp.
That time was kept only in the memory of the instance that read the event, and only for its
last 50,000 events: about one second while a consumer catches up at 45,000 events a second.
So an alert sent after a backlog, after a restart, or by another instance was timed from
when it was recorded instead, which leaves out exactly the wait an operator is looking for.
Kept with the event, the time reaches whichever worker sends the alert.

Events stored before this revision have none (NULL); their alerts are timed from when they
were recorded, as before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("kafka_timestamp_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:  # SQLite drops a column by copying
        batch.drop_column("kafka_timestamp_ms")
