"""A user's data: everything jobwire keeps of them, exported as JSON or erased.

`GET /me/export` and `jobwire users export NAME` give a user's subscriptions and the alerts
sent for them; targets are masked unless the user asks for the full form with their own key.
`DELETE /me` and `jobwire users remove NAME` erase the user, their key, what their
subscriptions asked for and where they sent it, and their ledger rows; the log line names ids
only, never a name, an address or a target.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from service.redaction import mask
from service.store import Erased, Store, User

log = structlog.get_logger("jobwire.personal_data")


async def export(store: Store, user: User, full_targets: bool = False) -> dict[str, Any]:
    shown = (lambda url: url) if full_targets else mask
    subscriptions = await store.subscriptions.all(owner=user.id)
    rows = await store.ledger.recent(owner=user.id, limit=None)
    log.info("user.exported", user_id=user.id, full_targets=full_targets)
    return {
        "user": {
            "id": user.id,
            "name": user.name,
            "email": user.email,
            "created_at": _time(user.created_at),
        },
        "subscriptions": [
            {**sub.public().model_dump(mode="json"), "notify": [shown(u) for u in sub.notify]}
            for sub in subscriptions
        ],
        "deliveries": [
            {
                "id": row.id,
                "subscription_id": row.subscription_id,
                "event": f"{row.event_kind}:{row.event_id}",
                "target": shown(row.target),
                "status": row.status,
                "attempts": row.attempts,
                "created_at": _time(row.created_at),
                "sent_at": _time(row.sent_at),
                "last_error": row.last_error if full_targets else row.shown_error,
            }
            for row in rows
        ],
    }


async def export_named(store: Store, name: str) -> dict[str, Any] | None:
    user = await store.accounts.by_name(name)
    return await export(store, user) if user else None


async def erase(store: Store, user_id: str) -> Erased | None:
    erased = await store.accounts.erase(user_id)
    if erased is not None:
        log.info(
            "user.erased",
            user_id=erased.user_id,
            subscriptions=erased.subscriptions,
            deliveries=erased.deliveries,
        )
    return erased


async def erase_named(store: Store, name: str) -> Erased | None:
    user = await store.accounts.by_name(name)
    return await erase(store, user.id) if user else None


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else f"{moment.isoformat()}Z"
