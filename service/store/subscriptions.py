"""Subscriptions as stored: what each person asked for, where it goes, and what changed.

A subscription's notify URLs live in `targets`, one row each, sealed when keys are set. The
running matcher polls `changes`, which never opens a URL: it needs the criteria and the target
ids that ledger rows will name, so a million subscriptions load without a million decryptions.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy import (
    Connection,
    Select,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.own_mail import sent_via
from service.redaction import scheme_of
from service.schedule import Schedule, clock_time, quiet_hours
from service.store.crypto import Sealer
from service.store.engine import by_itself, transaction
from service.store.schema import deliveries, owner_counts, subscriptions, targets, utcnow
from service.subscriptions import Criteria, Subscription, SubscriptionIn

log = structlog.get_logger("jobwire.store")

REMOVED_TARGET = "its target was removed from the subscription"
PAUSED = "its subscription was paused"
DELETED = "its subscription was deleted"


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    """A subscription as the matcher needs it: what it wants, where its alerts go, and when
    (None: each alert at once, as most subscriptions have it)."""

    id: str
    criteria: Criteria
    target_ids: tuple[int, ...]
    wanted: bool
    updated_at: datetime
    schedule: Schedule | None = None


class OwnerLimitReached(Exception):
    """The owner already has `owned` subscriptions, the most allowed; nothing was added."""

    def __init__(self, owned: int) -> None:
        super().__init__(f"{owned} subscriptions already")
        self.owned = owned


class Subscriptions:
    def __init__(self, engine: AsyncEngine, sealer: Sealer) -> None:
        self.engine = engine
        self.sealer = sealer

    async def add(
        self, spec: SubscriptionIn, owner: str | None = None, max_owned: int | None = None
    ) -> Subscription:
        """Store a new subscription; with `max_owned`, only if the owner has fewer than that.

        Reading the owner's count (a number the store keeps, migration 0014) and inserting
        happen in one transaction that holds a per-owner lock, so concurrent adds cannot all
        see "one below the limit" and all insert (30 at once took a user with 95 of 100 to
        120). PostgreSQL: a transaction-scoped advisory lock on the owner, taken, read under
        and inserted under by one call to the server in autocommit, a round trip in all
        (`jobwire_add_subscription`, migration 0013). SQLite: BEGIN IMMEDIATE, which takes the
        database's write lock before reading.
        """
        now = utcnow()
        row = {
            **spec.model_dump(exclude={"notify"}),
            "id": uuid.uuid4().hex,
            "owner": owner,
            "deleted": False,
            "created_at": now,
            "updated_at": now,
        }
        limit = max_owned if owner is not None else None  # only an owner has a limit

        def add_whole(conn: Connection) -> list[int]:
            if limit is not None:
                # The driver would BEGIN (deferred) only at the INSERT, after the count.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                owned = int(conn.execute(_OWNED, {"owner": owner}).scalar_one())
                if owned >= limit:
                    raise OwnerLimitReached(owned)
            conn.execute(_INSERT_SUBSCRIPTION, row)
            return self._add_targets(conn, row["id"], enumerate(spec.notify))

        if limit is not None and self.engine.dialect.name == "postgresql":
            ids = await by_itself(self.engine, self._add_under_limit(row, spec.notify, limit))
        else:
            ids = await transaction(self.engine, add_whole)
        return _subscription(row, list(zip(ids, spec.notify, strict=True)))

    def _add_under_limit(
        self, row: dict[str, Any], urls: Sequence[str], max_owned: int
    ) -> Callable[[Connection], list[int]]:
        """PostgreSQL: the call that adds the row and its targets if its owner has fewer than
        `max_owned`."""
        values = {
            "subscription": orjson.dumps(row).decode(),
            "targets": orjson.dumps(
                [
                    {name: target[name] for name in ("position", "url", "scheme", "sent_via")}
                    for target in self._target_rows(row["id"], enumerate(urls))
                ]
            ).decode(),
            "max_owned": max_owned,
        }

        def call(conn: Connection) -> list[int]:
            owned, ids = conn.execute(_ADD_UNDER_LIMIT, values).one()
            if owned >= max_owned:
                raise OwnerLimitReached(owned)
            return list(ids or [])

        return call

    def _add_targets(
        self, conn: Connection, subscription_id: str, urls: Iterable[tuple[int, str]]
    ) -> list[int]:
        rows = self._target_rows(subscription_id, urls)
        if not rows:
            return []
        return list(conn.execute(_INSERT_TARGETS, rows).scalars())

    def _target_rows(
        self, subscription_id: str, urls: Iterable[tuple[int, str]]
    ) -> list[dict[str, Any]]:
        return [
            {
                "subscription_id": subscription_id,
                "position": position,
                "url": self.sealer.seal(url),
                "scheme": scheme_of(url)[:32],  # the column's width; no real scheme is longer
                "sent_via": sent_via(url),
                "removed": False,
            }
            for position, url in urls
        ]

    async def fill_sent_via(self, batch: int = 2_000) -> int:
        """Say what each target made before migration 0010 is sent through (its URL opened
        here, where the keys are), a batch per transaction; returns how many. Later targets
        have it from the start, so this finds nothing after the first start."""
        filled = 0
        while True:
            async with self.engine.begin() as conn:
                rows = (
                    await conn.execute(
                        select(targets.c.id, targets.c.url)
                        .where(targets.c.sent_via.is_(None))
                        .limit(batch)
                    )
                ).all()
                if not rows:
                    return filled
                by_via: dict[str, list[int]] = defaultdict(list)
                for target_id, url in rows:
                    by_via[sent_via(self.sealer.open(url))].append(target_id)
                for via, ids in by_via.items():
                    await conn.execute(
                        update(targets).where(targets.c.id.in_(ids)).values(sent_via=via)
                    )
            filled += len(rows)
            if filled % 100_000 < len(rows):  # a store of millions takes a while: say so
                log.info("store.routing_targets", targets_done=filled)

    async def get(self, subscription_id: str, owner: str | None = None) -> Subscription | None:
        if owner is None:
            found = await self._with_targets(_ONE, {"id": subscription_id})
        else:
            found = await self._with_targets(_OWNED_ONE, {"id": subscription_id, "owner": owner})
        return found[0] if found else None

    async def all(self, owner: str | None = None) -> list[Subscription]:
        query = (
            select(subscriptions)
            .where(subscriptions.c.deleted.is_(False))
            .order_by(subscriptions.c.created_at, subscriptions.c.id)
        )
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        return await self._with_targets(query)

    async def _with_targets(
        self, query: Any, parameters: dict[str, Any] | None = None
    ) -> list[Subscription]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query, parameters)).mappings().all()
            urls = await conn.run_sync(_target_urls, [row["id"] for row in rows])
        return [
            _subscription(row, [(tid, self.sealer.open(url)) for tid, url in urls[row["id"]]])
            for row in rows
        ]

    async def update(
        self, subscription_id: str, spec: SubscriptionIn, owner: str | None = None
    ) -> Subscription | None:
        """Replace what a subscription asks for; None if it does not exist (for this owner).

        Targets it keeps keep their ids (their pending alerts stay); targets it drops are
        marked removed, and their pending alerts are recorded dead with the reason.
        """
        query = update(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.deleted.is_(False)
        )
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                query.values(**spec.model_dump(exclude={"notify"}), updated_at=utcnow())
            )
            if result.rowcount == 0:
                return None
            await self._replace_targets(conn, subscription_id, spec.notify)
            if not spec.active:
                await self._end_waiting(conn, subscription_id, PAUSED)
        return await self.get(subscription_id)

    async def _replace_targets(
        self, conn: AsyncConnection, subscription_id: str, wanted: Sequence[str]
    ) -> None:
        current = (
            await conn.execute(
                select(targets.c.id, targets.c.url).where(
                    targets.c.subscription_id == subscription_id, targets.c.removed.is_(False)
                )
            )
        ).all()
        kept: dict[str, int] = {}
        dropped: list[int] = []
        for target_id, stored in current:
            url = self.sealer.open(stored)
            if url in wanted and url not in kept:
                kept[url] = target_id
            else:
                dropped.append(target_id)
        for position, url in enumerate(wanted):
            if url in kept:
                await conn.execute(
                    update(targets).where(targets.c.id == kept[url]).values(position=position)
                )
        await conn.run_sync(
            self._add_targets,
            subscription_id,
            ((p, url) for p, url in enumerate(wanted) if url not in kept),
        )
        if dropped:
            await conn.execute(
                update(targets).where(targets.c.id.in_(dropped)).values(removed=True, position=-1)
            )
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.target_id.in_(dropped), deliveries.c.status == "pending")
                .values(status="dead", last_error=REMOVED_TARGET)
            )

    async def _end_waiting(self, conn: AsyncConnection, subscription_id: str, why: str) -> None:
        """Alerts of the subscription still waiting (a digest's rows, retries) are recorded
        dead with `why`: someone who paused or deleted it, often from an unsubscribe link,
        must not get a digest of it the next morning."""
        its_targets = select(targets.c.id).where(targets.c.subscription_id == subscription_id)
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.target_id.in_(its_targets), deliveries.c.status == "pending")
            .values(status="dead", last_error=why)
        )

    async def set_active(self, subscription_id: str, active: bool) -> Subscription | None:
        """Pause or resume a subscription whoever owns it (an unsubscribe link)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(subscriptions)
                .where(subscriptions.c.id == subscription_id, subscriptions.c.deleted.is_(False))
                .values(active=active, updated_at=utcnow())
            )
            if result.rowcount and not active:
                await self._end_waiting(conn, subscription_id, PAUSED)
        return await self.get(subscription_id)

    async def count(self, owner: str) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(_OWNED, {"owner": owner})).scalar_one())

    async def delete(self, subscription_id: str, owner: str | None = None) -> bool:
        query = update(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.deleted.is_(False)
        )
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        async with self.engine.begin() as conn:
            result = await conn.execute(query.values(deleted=True, updated_at=utcnow()))
            if result.rowcount:
                await self._end_waiting(conn, subscription_id, DELETED)
        return bool(result.rowcount)

    async def changes(
        self, since: datetime | None
    ) -> tuple[list[SubscriptionChange], datetime | None]:
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
            ids = await conn.run_sync(_target_ids, since)
        changes = [
            SubscriptionChange(
                id=row["id"],
                criteria=Criteria.model_construct(
                    **{name: row[name] for name in Criteria.model_fields}
                ),
                target_ids=tuple(ids.get(row["id"], ())),
                wanted=bool(row["active"] and not row["deleted"]),
                updated_at=row["updated_at"],
                schedule=_schedule(row),
            )
            for row in rows
        ]
        newest = rows[-1]["updated_at"] if rows else since
        return changes, newest


def _target_urls(conn: Connection, subscription_ids: list[str]) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for start in range(0, len(subscription_ids), 500):  # bound the IN list
        chunk = subscription_ids[start : start + 500]
        rows = conn.execute(_TARGET_URLS, {"ids": chunk})
        for subscription_id, target_id, url in rows:
            found[subscription_id].append((target_id, url))
    return found


def _target_ids(conn: Connection, since: datetime | None) -> dict[str, list[int]]:
    """The live target ids of the subscriptions changed since `since` (all at the first load)."""
    query = (
        select(targets.c.subscription_id, targets.c.id)
        .where(targets.c.removed.is_(False))
        .order_by(targets.c.subscription_id, targets.c.position)
    )
    if since is not None:
        changed = select(subscriptions.c.id).where(
            subscriptions.c.updated_at > since - timedelta(seconds=2)
        )
        query = query.where(targets.c.subscription_id.in_(changed))
    found: dict[str, list[int]] = defaultdict(list)
    for subscription_id, target_id in conn.execute(query):
        found[subscription_id].append(target_id)
    return found


def _subscription(row: Any, targets_of: list[tuple[int, str]]) -> Subscription:
    fields = {k: row[k] for k in Subscription.model_fields if k not in {"notify", "target_ids"}}
    return Subscription.model_construct(
        **fields,
        notify=[url for _, url in targets_of],
        target_ids=[target_id for target_id, _ in targets_of],
    )


# A create's statements, built once with their values bound when run: built per call with
# the values in them, SQLAlchemy made each statement's cache key again (a bound parameter per
# column) before finding it compiled, about a fifth of a create's time in the store.
# An owner's live subscriptions: a number the store's triggers keep (migration 0014), one row
# read whatever the owner has; no row yet is none.
_OWNED: Select[int] = select(func.coalesce(func.max(owner_counts.c.live), 0)).where(
    owner_counts.c.owner == bindparam("owner")
)
_INSERT_SUBSCRIPTION = subscriptions.insert()
# RETURNING in the order the rows were given: the ids are paired with the URLs by position.
_INSERT_TARGETS = targets.insert().returning(targets.c.id, sort_by_parameter_order=True)


# PostgreSQL: one call in autocommit (migration 0013); the count before, and the targets' ids
# in their order (none when the owner is at the limit).
_ADD_UNDER_LIMIT = text(
    "SELECT owned, target_ids FROM jobwire_add_subscription("
    "CAST(:subscription AS json), CAST(:targets AS json), :max_owned)"
)
# And a read's (every GET, PATCH, DELETE and test of one subscription starts with one).
_ONE = select(subscriptions).where(
    subscriptions.c.id == bindparam("id"), subscriptions.c.deleted.is_(False)
)
_OWNED_ONE = _ONE.where(subscriptions.c.owner == bindparam("owner"))
_TARGET_URLS = (
    select(targets.c.subscription_id, targets.c.id, targets.c.url)
    .where(
        targets.c.subscription_id.in_(bindparam("ids", expanding=True)),
        targets.c.removed.is_(False),
    )
    .order_by(targets.c.subscription_id, targets.c.position)
)


def _schedule(row: Any) -> Schedule | None:
    """The subscription's schedule, None when its alerts all go at once."""
    if row["frequency"] == "instant" and not row["quiet_hours"]:
        return None
    return Schedule(
        frequency=row["frequency"],
        at=clock_time(row["at"]),
        timezone=row["timezone"],
        weekday=row["weekday"],
        quiet=quiet_hours(row["quiet_hours"]) if row["quiet_hours"] else None,
    )
