"""The store's tables, as the newest migration leaves them.

Alembic owns the schema (`service/store/migrations/`); this module is the model the code reads
and writes, and `alembic check` (run by the tests) fails when the two disagree, so a change here
without a migration cannot land.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    literal_column,
)

# SQLAlchemy's default names, as the stores created before migrations existed have them.
metadata = MetaData()


def key(length: int) -> String:
    """Text that identifies, never words for people: compared byte by byte (collation "C") on
    PostgreSQL whatever the database's locale, as SQLite always does (migration 0009). A
    language's collation made the ledger's indexes a third slower."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner", String(64)),
    Column("name", String(200), nullable=False, default=""),
    Column("employers", JSON, nullable=False),
    Column("titles", JSON, nullable=False),
    Column("cities", JSON, nullable=False),
    Column("exclude", JSON, nullable=False),
    Column("kinds", JSON, nullable=False),
    # When its alerts go out (service/schedule.py): at once, or in a digest at a local time.
    Column("frequency", String(8), nullable=False, server_default="instant"),
    Column("at", String(5), nullable=False, server_default="08:00"),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("weekday", String(9), nullable=False, server_default="monday"),
    Column("quiet_hours", String(11)),
    Column("active", Boolean, nullable=False, default=True),
    # Deleted rows stay as tombstones so a running matcher polling for changes sees the delete.
    Column("deleted", Boolean, nullable=False, default=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False, index=True),
    # An owner's live subscriptions, listed without reading the others'.
    Index("ix_subscriptions_owner_deleted", "owner", "deleted"),
)

# Each owner's live subscriptions (an owner, not deleted), kept by triggers on `subscriptions`
# (migration 0014), so a create under the owner's limit reads a number instead of counting rows.
owner_counts = Table(
    "owner_counts",
    metadata,
    Column("owner", String(64), primary_key=True),
    Column("live", Integer, nullable=False),
)

# Every event consumed in the last JOBWIRE_RETENTION__EVENTS_DAYS, matched or not: the payload
# renders alerts, and `search` (the normalized words matching reads) lets "which recent events
# would this subscription match" narrow 100,000 rows to a few candidates in SQL.
events = Table(
    "events",
    metadata,
    Column("kind", key(16), primary_key=True),
    Column("id", key(200), primary_key=True),
    Column("payload", JSON, nullable=False),
    Column("received_at", DateTime, nullable=False, index=True),
    # NULL for events stored before it existed; those are always checked in full.
    Column("search", Text),
    # The Kafka record's timestamp (ms since the epoch), where alert latency starts, for
    # whichever instance sends the alert; NULL when the record had none (migration 0011).
    Column("kafka_timestamp_ms", BigInteger),
)

# Where a subscription's alerts go: one row per notify URL, in the subscription's order. A URL
# holds passwords and tokens, so it is sealed (encrypted) when the operator sets keys
# (service/store/crypto.py); ledger rows name a target by id and never copy its URL. A target a
# user took out of their subscription stays, `removed`, while ledger rows still refer to it.
targets = Table(
    "targets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", String(32), nullable=False),
    Column("position", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("scheme", String(32), nullable=False),
    Column("removed", Boolean, nullable=False, default=False),
    # What the target's sends go through beside its own URL, so a claim can pass over every
    # target of a busy shared server at once, URLs sealed or not (service/own_mail.py): ""
    # for none; NULL only until the first start after migration 0010 has looked.
    Column("sent_via", key(16)),
    Index("ix_targets_subscription", "subscription_id", "position"),
    Index("ix_targets_sent_via", "sent_via"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # No subscription: a row's target names it (`targets.subscription_id`), and every byte and
    # index of a row is paid for on each of the 50,000 rows a batch writes at fan-out 100. The
    # ledger is searched by target (a subscription's are few).
    Column("event_kind", key(16), nullable=False),
    Column("event_id", key(200), nullable=False),
    Column("target_id", Integer, nullable=False),
    Column("status", key(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("claimed_until", DateTime),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    # Waits for its subscription's digest (or the end of its quiet hours), then goes out with
    # the target's other digest rows as one message; `digest_id` names that message (its
    # first row's id), so the ledger shows which rows went together.
    Column("digest", Boolean, nullable=False, server_default=false()),
    Column("digest_id", Integer),
    # Recording a batch again is a no-op. Led by the event, so a batch's rows sit together and
    # retention's "does any alert still need this event?" is a lookup.
    UniqueConstraint("event_kind", "event_id", "target_id", name="uq_delivery"),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
)

# Alerts taken up (sending, sent, dead): the only ones in `ix_deliveries_target`. A query by
# target over them names this condition, as written here: SQLite uses a partial index only
# when the query has its condition, and cannot tell that a bound `status = ?` implies it.
TAKEN_UP = deliveries.c.status != literal_column("'pending'")
# The rest, read by target through `ix_deliveries_due` (its status first). A query over all
# of a target's rows asks for each of the two apart, so each reads its own index.
WAITING = deliveries.c.status == "pending"

# A row enters it when it is first claimed, not when its batch writes it, so a batch's rows
# enter three indexes, not four (migration 0015).
Index(
    "ix_deliveries_target",
    deliveries.c.target_id,
    deliveries.c.status,
    postgresql_where=TAKEN_UP,
    sqlite_where=TAKEN_UP,
)

# Meta-alerts (service/operations/meta_alerts.py): when a target's owner and the operator were
# last told it died, and whether they were told it recovered; shared by every instance, so a
# dead target is announced once a day in all, not once per instance or restart.
target_notices = Table(
    "target_notices",
    metadata,
    Column("target_id", Integer, primary_key=True, autoincrement=False),
    Column("dead_notified_at", DateTime, nullable=False),
    Column("recovered_notified", Boolean, nullable=False, server_default=false()),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    # An address the user proved is theirs (a confirmed sign-up on the web page): where their
    # sign-in links and, if they ask, their alerts go. NULL for users only the operator made.
    Column("email", String(254)),
    UniqueConstraint("email", name="uq_users_email"),
)

# A user's API keys: the one `jobwire users add` printed, and those they made on the web page.
# Only a hash of each is kept: a copy of the database does not let anyone in.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(32), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("label", String(100), nullable=False, server_default=""),
    Column("created_at", DateTime, nullable=False),
)

# Links jobwire emails that work once and expire: a sign-up's confirmation (`payload`: the
# subscription it asked for) and a sign-in link. Only a hash of the token is kept.
email_tokens = Table(
    "email_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),
    Column("email", String(254), nullable=False, index=True),
    Column("payload", JSON),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
)

# Signed-in browsers of the web page: the cookie holds the token, the store its hash.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(32), nullable=False, index=True),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
)

# Secrets jobwire makes for itself (the unsubscribe-link key), shared by every instance.
service_secrets = Table(
    "service_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


def utcnow() -> datetime:
    """Naive UTC, the one form timestamps take in the store on both databases."""
    return datetime.now(UTC).replace(tzinfo=None)
