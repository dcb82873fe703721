"""The web page's accounts: several API keys per user, a confirmed email address, emailed links
that work once, and signed-in browsers.

Each user's key moves from `users.key_hash` to `api_keys` (labelled as the operator's), so a
user can hold several and revoke any. Downgrading keeps each user's oldest key; a user with
none gets a hash no key has, so the column can be NOT NULL again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OPERATOR_LABEL = "from the operator (jobwire users add)"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(100), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.execute(
        sa.text(
            "INSERT INTO api_keys (user_id, key_hash, label, created_at) "
            "SELECT id, key_hash, :label, created_at FROM users ORDER BY created_at, id"
        ).bindparams(label=OPERATOR_LABEL)
    )
    with op.batch_alter_table("users") as batch:
        batch.drop_column("key_hash")
        batch.add_column(sa.Column("email", sa.String(254)))
        batch.create_unique_constraint("uq_users_email", ["email"])

    op.create_table(
        "email_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("payload", sa.JSON()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_email_tokens_email", "email_tokens", ["email"])
    op.create_index("ix_email_tokens_expires_at", "email_tokens", ["expires_at"])
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("web_sessions")
    op.drop_table("email_tokens")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_email", type_="unique")
        batch.drop_column("email")
        batch.add_column(sa.Column("key_hash", sa.String(64)))
    op.execute(
        "UPDATE users SET key_hash = (SELECT k.key_hash FROM api_keys k WHERE k.user_id = users.id "
        "ORDER BY k.id LIMIT 1)"
    )
    # No key at all (every one revoked): a value no SHA-256 hex digest can equal.
    op.execute("UPDATE users SET key_hash = 'none:' || id WHERE key_hash IS NULL")
    with op.batch_alter_table("users") as batch:
        batch.alter_column("key_hash", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("users_key_hash_key", ["key_hash"])
    op.drop_index("ix_api_keys_user_id", table_name="api_keys")
    op.drop_table("api_keys")
