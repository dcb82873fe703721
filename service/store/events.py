"""Recent events: every event consumed in the last JOBWIRE_RETENTION__EVENTS_DAYS days.

The ledger writes them with each batch (`Ledger.record`); this module reads them back for "which
of the last days' events would this subscription have matched" (the web preview and
`jobwire match --recent`). Each row carries `search`, the normalized words the rules can read,
so SQL narrows 100,000 rows to the few that share a word with the subscription, using the index
on `received_at` for the window; the service's own matcher then decides on those few.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from consumers.events import AnyEvent, Event
from service.store.schema import events


class RecentEvents:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def candidates(
        self,
        since: datetime,
        kinds: Sequence[str],
        words: Sequence[Sequence[str]],
        limit: int = 50_000,
    ) -> list[Event]:
        """Events received since `since`, of these kinds, whose words include one word of each
        group in `words`, newest first."""
        query = (
            select(events.c.payload)
            .where(events.c.received_at >= since, events.c.kind.in_(list(kinds)))
            .order_by(events.c.received_at.desc(), events.c.id)
            .limit(limit)
        )
        if words:
            has_them = and_(
                *(
                    or_(*(events.c.search.contains(f" {word} ", autoescape=True) for word in group))
                    for group in words
                )
            )
            # NULL: stored before the search words existed, so it is checked in full.
            query = query.where(or_(events.c.search.is_(None), has_them))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).scalars().all()
        return [AnyEvent.validate_python(payload) for payload in rows]

    async def newest(self, since: datetime, kinds: Sequence[str], limit: int) -> list[Event]:
        """The newest events received since `since`, of these kinds (the page's preview before
        anything is typed). Ordered by the indexed `received_at` alone, so the database reads
        `limit` rows backwards from the newest instead of sorting the window: 1 ms, not 54 ms,
        at 100,000 events (bench/bench_web.py)."""
        # `kind || ''`, not `kind`: SQLite would otherwise pick the primary key (led by kind)
        # for the IN and sort the whole window.
        query = (
            select(events.c.payload)
            .where(events.c.received_at >= since, (events.c.kind + "").in_(list(kinds)))
            .order_by(events.c.received_at.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).scalars().all()
        return [AnyEvent.validate_python(payload) for payload in rows]

    async def some(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Event]:
        """The events still kept among `keys` (kind, id): what a list of alerts shows."""
        if not keys:
            return {}
        by_kind: dict[str, set[str]] = {}
        for kind, event_id in keys:
            by_kind.setdefault(kind, set()).add(event_id)
        # One `kind = ? AND id IN (...)` per kind: SQLite answers a tuple IN with a full scan.
        query = select(events.c.payload).where(
            or_(*(and_(events.c.kind == k, events.c.id.in_(ids)) for k, ids in by_kind.items()))
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).scalars().all()
        found = [AnyEvent.validate_python(payload) for payload in rows]
        return {(event.kind, event.id): event for event in found}
