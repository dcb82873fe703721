"""What the store says about targets for operators: whose a target is, and which are dead.

Questions for the meta-alerts (who to tell when a target dies, and whether anyone told so
already: `target_notices`) and for `jobwire status` (which targets are dead now, when the last
event came). A target is dead when
the newest of its alerts that was tried to the end (sent or dead) is dead: once an alert gets
through again it is alive, whatever died before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.redaction import shown_error
from service.store.crypto import Sealer
from service.store.engine import insert
from service.store.schema import (
    TAKEN_UP,
    deliveries,
    events,
    subscriptions,
    target_notices,
    targets,
    users,
)


@dataclass(frozen=True, slots=True)
class TargetOwner:
    """A target, the subscription it belongs to, and how else its owner can be reached."""

    target_id: int
    target: str
    subscription_id: str
    subscription_name: str
    # The owner's user name (None for a subscription the operator made without a user).
    owner_name: str | None
    # The address the owner confirmed on the web page, if they did.
    owner_email: str | None
    # The subscription's other targets, in its order (removed ones left out).
    other_targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeadTarget:
    target_id: int
    target: str
    subscription_id: str
    subscription_name: str
    # Dead alerts since the target last took one, and when the first of them was recorded.
    dead: int
    since: datetime
    last_error: str | None

    @property
    def shown_error(self) -> str | None:
        """`last_error` to show anyone (service/redaction.py)."""
        return shown_error(self.last_error, self.target)


class TargetState:
    def __init__(self, engine: AsyncEngine, sealer: Sealer) -> None:
        self.engine = engine
        self.sealer = sealer
        self._insert = insert(engine)

    async def owner_of(self, target_id: int) -> TargetOwner | None:
        query = (
            select(
                targets.c.url,
                targets.c.subscription_id,
                subscriptions.c.name,
                users.c.name.label("owner_name"),
                users.c.email.label("owner_email"),
            )
            .join(subscriptions, subscriptions.c.id == targets.c.subscription_id)
            .outerjoin(users, users.c.id == subscriptions.c.owner)
            .where(targets.c.id == target_id)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
            if row is None:
                return None
            others = (
                await conn.execute(
                    select(targets.c.url)
                    .where(
                        targets.c.subscription_id == row["subscription_id"],
                        targets.c.removed.is_(False),
                        targets.c.id != target_id,
                    )
                    .order_by(targets.c.position)
                )
            ).scalars()
            other_targets = tuple(self.sealer.open(url) for url in others)
        return TargetOwner(
            target_id=target_id,
            target=self.sealer.open(row["url"]),
            subscription_id=row["subscription_id"],
            subscription_name=row["name"] or "",
            owner_name=row["owner_name"],
            owner_email=row["owner_email"],
            other_targets=other_targets,
        )

    async def claim_dead_notice(self, target_id: int, now: datetime, quiet: timedelta) -> bool:
        """Whether to tell that the target died: not if someone (any instance) told so within
        `quiet`. Claimed in one statement, so two instances cannot both say yes."""
        insert = self._insert(target_notices).values(
            target_id=target_id, dead_notified_at=now, recovered_notified=False
        )
        claim = insert.on_conflict_do_update(
            index_elements=[target_notices.c.target_id],
            set_={"dead_notified_at": now, "recovered_notified": False},
            where=target_notices.c.dead_notified_at <= now - quiet,
        ).returning(target_notices.c.target_id)
        async with self.engine.begin() as conn:
            return (await conn.execute(claim)).first() is not None

    async def claim_recovered_notice(self, target_id: int) -> bool:
        """Whether to tell that the target recovered: only once, after a dead notice."""
        claim = (
            update(target_notices)
            .where(
                target_notices.c.target_id == target_id,
                target_notices.c.recovered_notified.is_(False),
            )
            .values(recovered_notified=True)
            .returning(target_notices.c.target_id)
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(claim)).first() is not None

    async def dead(self, owner: str | None = None) -> list[DeadTarget]:
        """Targets (not removed) whose newest finished alert is dead, most dead alerts first;
        `owner`: only that user's (their page), read through the ledger's target index."""
        query = dead_targets_statement(owner)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            DeadTarget(
                target_id=row["id"],
                target=self.sealer.open(row["url"]),
                subscription_id=row["subscription_id"],
                subscription_name=row["name"] or "",
                dead=int(row["dead"]),
                since=row["since"],
                last_error=row["last_error"],
            )
            for row in rows
        ]

    async def last_event_at(self) -> datetime | None:
        """When the newest event kept was consumed (by any instance)."""
        async with self.engine.connect() as conn:
            found: datetime | None = (
                await conn.execute(select(func.max(events.c.received_at)))
            ).scalar()
        return found


def dead_targets_statement(owner: str | None) -> Select[Any]:
    """`TargetState.dead`'s query (tests read its plan)."""
    finished = deliveries.c.status.in_(("sent", "dead"))
    scope: ColumnElement[bool] = true()
    if owner is not None:
        theirs = (
            select(targets.c.id)
            .join(subscriptions, subscriptions.c.id == targets.c.subscription_id)
            .where(subscriptions.c.owner == owner)
        )
        # Every row read here is taken up; saying so lets SQLite use the index.
        scope = TAKEN_UP & deliveries.c.target_id.in_(theirs)
    last_sent = (
        select(deliveries.c.target_id, func.max(deliveries.c.id).label("last_sent"))
        .where(deliveries.c.status == "sent", scope)
        .group_by(deliveries.c.target_id)
        .subquery()
    )
    newest = (
        select(deliveries.c.target_id, func.max(deliveries.c.id).label("newest"))
        .where(finished, scope)
        .group_by(deliveries.c.target_id)
        .subquery()
    )
    dead_since = (
        select(
            deliveries.c.target_id,
            func.count().label("dead"),
            func.min(deliveries.c.created_at).label("since"),
            func.max(deliveries.c.id).label("last_dead"),
        )
        .outerjoin(last_sent, last_sent.c.target_id == deliveries.c.target_id)
        .where(
            deliveries.c.status == "dead",
            scope,
            (last_sent.c.last_sent.is_(None)) | (deliveries.c.id > last_sent.c.last_sent),
        )
        .group_by(deliveries.c.target_id)
        .subquery()
    )
    last = deliveries.alias("last")
    return (
        select(
            targets.c.id,
            targets.c.url,
            targets.c.subscription_id,
            subscriptions.c.name,
            dead_since.c.dead,
            dead_since.c.since,
            last.c.last_error,
        )
        .join(newest, newest.c.target_id == targets.c.id)
        .join(dead_since, dead_since.c.target_id == targets.c.id)
        .join(last, last.c.id == dead_since.c.last_dead)
        .outerjoin(subscriptions, subscriptions.c.id == targets.c.subscription_id)
        .where(targets.c.removed.is_(False), newest.c.newest == dead_since.c.last_dead)
        .order_by(dead_since.c.dead.desc(), targets.c.id)
    )
