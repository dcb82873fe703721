"""Targets get a table of their own; ledger rows refer to one instead of copying its URL.

A subscription's notify URLs move from `subscriptions.notify` (JSON) to `targets`, one row
each, where the URL can be kept encrypted (JOBWIRE_STORE__ENCRYPTION_KEYS). Every ledger row
names its target by id: a row no longer carries a copy of a URL and its password, and the
unique key becomes (event kind, event id, target), which retention also reads.

URLs that ledger rows still name but their subscription no longer lists become targets marked
`removed`, so those rows keep their URL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _scheme(column: str) -> str:
    """SQL for the lower-cased scheme of a URL column (the part before ://)."""
    if op.get_bind().dialect.name == "postgresql":
        return f"lower(split_part({column}, '://', 1))"
    return f"lower(substr({column}, 1, instr({column}, '://') - 1))"


def upgrade() -> None:
    op.create_table(
        "targets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("scheme", sa.String(32), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_targets_subscription", "targets", ["subscription_id", "position"])
    if op.get_bind().dialect.name == "postgresql":
        listed = """
            SELECT s.id, (j.n - 1)::int, j.url, {scheme}, false
            FROM subscriptions s, json_array_elements_text(s.notify) WITH ORDINALITY AS j(url, n)
        """
    else:
        listed = """
            SELECT s.id, CAST(j.key AS INTEGER), j.value, {scheme}, 0
            FROM subscriptions s, json_each(s.notify) AS j
        """
    column = "j.url" if op.get_bind().dialect.name == "postgresql" else "j.value"
    op.execute(
        "INSERT INTO targets (subscription_id, position, url, scheme, removed) "
        + listed.format(scheme=_scheme(column))
    )
    op.execute(
        "INSERT INTO targets (subscription_id, position, url, scheme, removed) "
        f"SELECT DISTINCT d.subscription_id, -1, d.target, {_scheme('d.target')}, "
        f"{'true' if op.get_bind().dialect.name == 'postgresql' else '1'} "
        "FROM deliveries d WHERE NOT EXISTS (SELECT 1 FROM targets t "
        "WHERE t.subscription_id = d.subscription_id AND t.url = d.target)"
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("target_id", sa.Integer()))
    op.execute(
        "UPDATE deliveries SET target_id = (SELECT min(t.id) FROM targets t "
        "WHERE t.subscription_id = deliveries.subscription_id AND t.url = deliveries.target)"
    )
    op.drop_index("ix_deliveries_target", "deliveries")
    op.drop_index("ix_deliveries_event", "deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_delivery", type_="unique")
        batch.drop_column("target")
        batch.alter_column("target_id", existing_type=sa.Integer(), nullable=False)
        batch.create_unique_constraint("uq_delivery", ["event_kind", "event_id", "target_id"])
    op.create_index("ix_deliveries_target", "deliveries", ["target_id", "status"])
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("notify")


def downgrade() -> None:
    bind = op.get_bind()
    sealed = bind.execute(sa.text("SELECT count(*) FROM targets WHERE url LIKE 'fernet:%'"))
    if sealed.scalar_one():
        raise RuntimeError(
            "targets are stored encrypted and revision 0002 keeps them in plain text: run "
            "`jobwire keys decrypt` (with JOBWIRE_STORE__ENCRYPTION_KEYS set) before downgrading"
        )
    pg = bind.dialect.name == "postgresql"
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("notify", sa.JSON()))
    aggregate = "json_agg(t.url ORDER BY t.position)" if pg else "json_group_array(t.url)"
    ordered = "targets t" if pg else "(SELECT * FROM targets ORDER BY position) t"
    op.execute(
        f"UPDATE subscriptions SET notify = (SELECT {aggregate} FROM {ordered} "
        "WHERE t.subscription_id = subscriptions.id AND NOT t.removed)"
    )
    op.execute("UPDATE subscriptions SET notify = '[]' WHERE notify IS NULL")
    with op.batch_alter_table("subscriptions") as batch:
        batch.alter_column("notify", existing_type=sa.JSON(), nullable=False)
    op.drop_index("ix_deliveries_target", "deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("target", sa.Text()))
    op.execute(
        "UPDATE deliveries SET target = "
        "(SELECT t.url FROM targets t WHERE t.id = deliveries.target_id)"
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_delivery", type_="unique")
        batch.drop_column("target_id")
        batch.alter_column("target", existing_type=sa.Text(), nullable=False)
        batch.create_unique_constraint(
            "uq_delivery", ["subscription_id", "event_kind", "event_id", "target"]
        )
    op.create_index("ix_deliveries_target", "deliveries", ["target", "status"])
    op.create_index("ix_deliveries_event", "deliveries", ["event_kind", "event_id"])
    op.drop_index("ix_targets_subscription", "targets")
    op.drop_table("targets")
