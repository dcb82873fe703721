"""PostgreSQL: a subscription's create under its owner's limit in one call to the server.

A create through the API with an owner and a limit took the owner's advisory lock, counted,
inserted the subscription and its targets, and committed: BEGIN, the lock, one statement and
COMMIT, four round trips, the lock held across the last three. Creates by one owner (a
service subscribing its users through one key, the benchmark's one user) took turns at that
lock, and every round trip cost jobwire about 0.2 ms of CPU. `jobwire_add_subscription` does
the same on the server, called in autocommit: one round trip, the lock held only while the
server works. A VOLATILE function's every statement takes a snapshot of its own, so the count,
made after the lock, sees every create that held it before (as the separate statement did).

The subscription arrives as one JSON object with every column (`json_populate_record` of the
table's row type, so a column added later needs no change here) and its targets as a JSON
array; it answers the owner's count before it and the targets' ids in their order, or the
count alone when the owner is at the limit. SQLite takes its file's write lock instead
(BEGIN IMMEDIATE) and has no functions: nothing changes there.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE FUNCTION jobwire_add_subscription(
    subscription json, new_targets json, max_owned integer,
    OUT owned bigint, OUT target_ids integer[]
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('subscriptions:' || (subscription ->> 'owner')));
    SELECT count(*) INTO owned FROM subscriptions AS s
    WHERE s.owner = subscription ->> 'owner' AND NOT s.deleted;
    IF owned >= max_owned THEN
        RETURN;
    END IF;
    INSERT INTO subscriptions
    SELECT * FROM json_populate_record(NULL::subscriptions, subscription);
    WITH added AS (
        INSERT INTO targets (subscription_id, position, url, scheme, sent_via, removed)
        SELECT subscription ->> 'id', t.position, t.url, t.scheme, t.sent_via, false
        FROM json_to_recordset(new_targets)
            AS t(position integer, url text, scheme text, sent_via text)
        RETURNING targets.id, targets.position
    )
    SELECT array_agg(added.id ORDER BY added.position) INTO target_ids FROM added;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION jobwire_add_subscription(json, json, integer)")
