"""The store: subscriptions, the events they matched, and the delivery ledger.

One schema for SQLite (the embedded default) and PostgreSQL (to scale out). The ledger holds
one row per (subscription, event, target), unique, so recording a batch that Kafka delivers
again is a no-op, and a row outlives any crash until it is sent or declared dead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    JSON,
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
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from consumers.events import AnyEvent, Event
from service.subscriptions import Subscription, SubscriptionIn

DeliveryStatus = Literal["pending", "sending", "sent", "dead"]

metadata = MetaData()

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner", String(64), index=True),
    Column("name", String(200), nullable=False, default=""),
    Column("employers", JSON, nullable=False),
    Column("titles", JSON, nullable=False),
    Column("cities", JSON, nullable=False),
    Column("exclude", JSON, nullable=False),
    Column("kinds", JSON, nullable=False),
    Column("notify", JSON, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    # Deleted rows stay as tombstones so a running matcher polling for changes sees the delete.
    Column("deleted", Boolean, nullable=False, default=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False, index=True),
)

events = Table(
    "events",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("payload", JSON, nullable=False),
    Column("received_at", DateTime, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", String(32), nullable=False, index=True),
    Column("event_kind", String(16), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("target", Text, nullable=False),
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("claimed_until", DateTime),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    UniqueConstraint("subscription_id", "event_kind", "event_id", "target", name="uq_delivery"),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
    Index("ix_deliveries_target", "target", "status"),
)


users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    # Only a hash of the API key is kept: a copy of the database does not let anyone in.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

# Secrets jobwire makes for itself (the unsubscribe-link key), shared by every instance.
service_secrets = Table(
    "service_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


class StoreUnavailable(Exception):
    """The store cannot be opened; the message says what to check (password hidden)."""


def utcnow() -> datetime:
    """Naive UTC, the one form timestamps take in the store on both databases."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Match:
    """An event that a subscription wants, to be sent to each of its targets."""

    subscription_id: str
    event: Event
    targets: Sequence[str]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One ledger row: one alert for one target."""

    id: int
    subscription_id: str
    event_kind: str
    event_id: str
    target: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery claimed for sending, with what rendering needs."""

    delivery: Delivery
    event: Event
    subscription_name: str


def _set_sqlite_pragmas(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    # WAL lets the CLI write subscriptions while the service reads and writes the ledger;
    # the busy timeout makes a concurrent writer wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Store:
    """Async access to the subscriptions and the ledger, on SQLite or PostgreSQL."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert: Any = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect, and create the tables the first time."""
        try:
            return await cls._open(url)
        except StoreUnavailable:
            raise
        except Exception as exc:
            shown = make_url(url).render_as_string(hide_password=True)
            raise StoreUnavailable(
                f"cannot open the store at {shown} ({type(exc).__name__}: {exc}); "
                "check JOBWIRE_STORE__URL and that the database is up"
            ) from exc

    @classmethod
    async def _open(cls, url: str) -> Store:
        engine = create_async_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
        elif engine.dialect.name != "postgresql":
            raise StoreUnavailable(
                f"unsupported store {engine.dialect.name!r}: use sqlite+aiosqlite:///FILE "
                "or postgresql+asyncpg://USER:PASSWORD@HOST/DB"
            )
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    # -- subscriptions -------------------------------------------------------------------------

    async def add_subscription(
        self, spec: SubscriptionIn, owner: str | None = None
    ) -> Subscription:
        now = utcnow()
        row = {
            **spec.model_dump(),
            "id": uuid.uuid4().hex,
            "owner": owner,
            "deleted": False,
            "created_at": now,
            "updated_at": now,
        }
        async with self.engine.begin() as conn:
            await conn.execute(subscriptions.insert().values(row))
        return _subscription(row)

    async def get_subscription(
        self, subscription_id: str, owner: str | None = None
    ) -> Subscription | None:
        query = select(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.deleted.is_(False)
        )
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _subscription(row) if row else None

    async def list_subscriptions(self, owner: str | None = None) -> list[Subscription]:
        query = (
            select(subscriptions)
            .where(subscriptions.c.deleted.is_(False))
            .order_by(subscriptions.c.created_at, subscriptions.c.id)
        )
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_subscription(row) for row in rows]

    async def update_subscription(
        self, subscription_id: str, spec: SubscriptionIn, owner: str | None = None
    ) -> Subscription | None:
        """Replace what a subscription asks for; None if it does not exist (for this owner)."""
        query = update(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.deleted.is_(False)
        )
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        async with self.engine.begin() as conn:
            result = await conn.execute(query.values(**spec.model_dump(), updated_at=utcnow()))
        if result.rowcount == 0:
            return None
        return await self.get_subscription(subscription_id)

    async def set_active(self, subscription_id: str, active: bool) -> Subscription | None:
        """Pause or resume a subscription whoever owns it (an unsubscribe link)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(subscriptions)
                .where(subscriptions.c.id == subscription_id, subscriptions.c.deleted.is_(False))
                .values(active=active, updated_at=utcnow())
            )
        return await self.get_subscription(subscription_id)

    async def count_subscriptions(self, owner: str) -> int:
        query = select(func.count()).where(
            subscriptions.c.owner == owner, subscriptions.c.deleted.is_(False)
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def delete_subscription(self, subscription_id: str, owner: str | None = None) -> bool:
        query = update(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.deleted.is_(False)
        )
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        async with self.engine.begin() as conn:
            result = await conn.execute(query.values(deleted=True, updated_at=utcnow()))
        return bool(result.rowcount)

    async def subscription_changes(
        self, since: datetime | None
    ) -> tuple[list[tuple[Subscription, bool]], datetime | None]:
        """Subscriptions changed after `since`, each with whether it should be matched.

        Returns the changes and the newest change time seen, to pass back next time. Callers
        apply changes idempotently, so the small overlap below (for writers whose clocks or
        commits straddle the poll) costs nothing.
        """
        query = select(subscriptions).order_by(subscriptions.c.updated_at)
        if since is not None:
            query = query.where(subscriptions.c.updated_at > since - timedelta(seconds=2))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        changes = [(_subscription(row), bool(row["active"] and not row["deleted"])) for row in rows]
        newest = rows[-1]["updated_at"] if rows else since
        return changes, newest

    # -- users and secrets ----------------------------------------------------------------------

    async def add_user(self, name: str, key_hash: str) -> User | None:
        """A new user; None if the name is taken."""
        user = User(uuid.uuid4().hex, name, utcnow())
        row = {"id": user.id, "name": name, "key_hash": key_hash, "created_at": user.created_at}
        async with self.engine.begin() as conn:
            inserted = await conn.execute(
                self._insert(users).on_conflict_do_nothing().returning(users.c.id), [row]
            )
            if not inserted.all():
                return None
        return user

    async def user_by_key_hash(self, key_hash: str) -> User | None:
        query = select(users.c.id, users.c.name, users.c.created_at).where(
            users.c.key_hash == key_hash
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return User(*row) if row else None

    async def list_users(self) -> list[User]:
        query = select(users.c.id, users.c.name, users.c.created_at).order_by(users.c.name)
        async with self.engine.connect() as conn:
            return [User(*row) for row in await conn.execute(query)]

    async def remove_user(self, name: str) -> int | None:
        """Remove a user and their subscriptions; None if there is no such user."""
        async with self.engine.begin() as conn:
            user_id = (
                await conn.execute(select(users.c.id).where(users.c.name == name))
            ).scalar_one_or_none()
            if user_id is None:
                return None
            await conn.execute(users.delete().where(users.c.id == user_id))
            removed = await conn.execute(
                update(subscriptions)
                .where(subscriptions.c.owner == user_id, subscriptions.c.deleted.is_(False))
                .values(deleted=True, updated_at=utcnow())
            )
        return removed.rowcount

    async def service_secret(self, name: str, candidate: str) -> str:
        """The secret called `name`, created as `candidate` by whichever instance asks first."""
        async with self.engine.begin() as conn:
            await conn.execute(
                self._insert(service_secrets).on_conflict_do_nothing(),
                [{"name": name, "value": candidate}],
            )
            return str(
                (
                    await conn.execute(
                        select(service_secrets.c.value).where(service_secrets.c.name == name)
                    )
                ).scalar_one()
            )

    # -- the ledger ----------------------------------------------------------------------------

    async def record(self, matches: Iterable[Match]) -> int:
        """Make a batch's matches durable; rows already recorded are left as they are.

        Returns how many new alerts were recorded.
        """
        now = utcnow()
        event_rows: dict[tuple[str, str], dict[str, Any]] = {}
        delivery_rows: list[dict[str, Any]] = []
        for match in matches:
            ev = match.event
            event_rows[(ev.kind, ev.id)] = {
                "kind": ev.kind,
                "id": ev.id,
                "payload": ev.model_dump(mode="json"),
                "received_at": now,
            }
            delivery_rows.extend(
                {
                    "subscription_id": match.subscription_id,
                    "event_kind": ev.kind,
                    "event_id": ev.id,
                    "target": target,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for target in match.targets
            )
        if not delivery_rows:
            return 0
        async with self.engine.begin() as conn:
            await conn.execute(
                self._insert(events).on_conflict_do_nothing(), list(event_rows.values())
            )
            # RETURNING, because drivers disagree on rowcount for a bulk insert.
            inserted = await conn.execute(
                self._insert(deliveries).on_conflict_do_nothing().returning(deliveries.c.id),
                delivery_rows,
            )
            return len(inserted.all())

    async def claim(self, limit: int, lease_s: float) -> list[ClaimedDelivery]:
        """Take up to `limit` due alerts for sending, safely beside other workers.

        A claim is a lease: if the worker dies, the row is due again when the lease ends.
        """
        now = utcnow()
        due = (
            select(deliveries.c.id)
            .where(
                or_(
                    (deliveries.c.status == "pending") & (deliveries.c.next_attempt_at <= now),
                    (deliveries.c.status == "sending") & (deliveries.c.claimed_until < now),
                )
            )
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(deliveries)
            .where(deliveries.c.id.in_(due.scalar_subquery()))
            .values(
                status="sending",
                attempts=deliveries.c.attempts + 1,
                claimed_until=now + timedelta(seconds=lease_s),
            )
            .returning(*deliveries.c)
        )
        async with self.engine.begin() as conn:
            claimed = [_delivery(row) for row in (await conn.execute(claim)).mappings().all()]
            if not claimed:
                return []
            return await self._with_context(conn, claimed)

    async def _with_context(
        self, conn: AsyncConnection, claimed: list[Delivery]
    ) -> list[ClaimedDelivery]:
        keys = {(d.event_kind, d.event_id) for d in claimed}
        rows = await conn.execute(
            select(events.c.kind, events.c.id, events.c.payload).where(
                or_(*((events.c.kind == k) & (events.c.id == i) for k, i in keys))
            )
        )
        payloads = {(kind, ev_id): payload for kind, ev_id, payload in rows}
        names: dict[str, str] = {
            sub_id: name
            for sub_id, name in await conn.execute(
                select(subscriptions.c.id, subscriptions.c.name).where(
                    subscriptions.c.id.in_({d.subscription_id for d in claimed})
                )
            )
        }
        return [
            ClaimedDelivery(
                delivery=d,
                event=AnyEvent.validate_python(payloads[(d.event_kind, d.event_id)]),
                subscription_name=names.get(d.subscription_id, ""),
            )
            for d in claimed
        ]

    async def mark_sent(self, delivery_id: int) -> None:
        await self._finish(delivery_id, status="sent", sent_at=utcnow(), last_error=None)

    async def mark_retry(self, delivery_id: int, next_attempt_at: datetime, error: str) -> None:
        await self._finish(
            delivery_id, status="pending", next_attempt_at=next_attempt_at, last_error=error
        )

    async def postpone_target(self, target: str, until: datetime) -> None:
        """Hold back every pending alert to a target that just failed, so a target that is
        down is not hammered by its backlog; its alerts keep their attempt counts."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.target == target,
                    deliveries.c.status == "pending",
                    deliveries.c.next_attempt_at < until,
                )
                .values(next_attempt_at=until)
            )

    async def defer(self, delivery_id: int, until: datetime) -> None:
        """Put a claimed alert back untried (its target is held), without using an attempt."""
        await self._finish(
            delivery_id,
            status="pending",
            next_attempt_at=until,
            attempts=deliveries.c.attempts - 1,
        )

    async def release(self, delivery_ids: Sequence[int]) -> None:
        """Give claimed alerts back at shutdown so the next worker sends them at once."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(delivery_ids), deliveries.c.status == "sending")
                .values(
                    status="pending",
                    claimed_until=None,
                    attempts=deliveries.c.attempts - 1,
                    next_attempt_at=utcnow(),
                )
            )

    async def mark_target_dead(self, target: str, error: str) -> int:
        """Declare dead every waiting alert to a target that failed all its attempts."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(deliveries.c.target == target, deliveries.c.status == "pending")
                .values(status="dead", last_error=error)
            )
        return result.rowcount

    async def mark_dead(self, delivery_id: int, error: str) -> None:
        await self._finish(delivery_id, status="dead", last_error=error)

    async def _finish(self, delivery_id: int, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(claimed_until=None, **values)
            )

    async def list_deliveries(
        self,
        status: DeliveryStatus | None = None,
        subscription_id: str | None = None,
        limit: int = 1000,
    ) -> list[Delivery]:
        query = select(deliveries).order_by(deliveries.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(deliveries.c.status == status)
        if subscription_id is not None:
            query = query.where(deliveries.c.subscription_id == subscription_id)
        async with self.engine.connect() as conn:
            return [_delivery(row) for row in (await conn.execute(query)).mappings().all()]

    async def delivery_counts(self) -> dict[str, int]:
        query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        async with self.engine.connect() as conn:
            return {status: int(n) for status, n in (await conn.execute(query)).all()}

    async def requeue(self, delivery_ids: Sequence[int] | None = None) -> int:
        """Send dead alerts again: the given ones, or every dead one when None."""
        query = update(deliveries).where(deliveries.c.status == "dead")
        if delivery_ids is not None:
            query = query.where(deliveries.c.id.in_(delivery_ids))
        async with self.engine.begin() as conn:
            result = await conn.execute(
                query.values(status="pending", attempts=0, next_attempt_at=utcnow())
            )
        return result.rowcount


def _subscription(row: Any) -> Subscription:
    return Subscription.model_construct(**{k: row[k] for k in Subscription.model_fields})


def _delivery(row: Any) -> Delivery:
    return Delivery(**{f.name: row[f.name] for f in fields(Delivery)})
