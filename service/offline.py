"""`jobwire match`: check subscriptions against events from files, with no Kafka and no store."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from consumers.events import AnyEvent, describe_errors
from service.matching import Matcher
from service.subscriptions import Criteria, ScheduleFields


class InputError(Exception):
    """A file that cannot be read as subscriptions or events; says where and what."""


class OfflineSubscription(Criteria, ScheduleFields):
    """A subscription as the API takes it; targets are optional and not checked here."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    notify: list[str] = Field(default_factory=list)


class _Subscriptions(BaseModel):
    items: list[OfflineSubscription]


def match_files(subscriptions: Path, events: Path) -> list[tuple[str, str]]:
    """(event id, subscription id) for every match, sorted by event then subscription."""
    matcher = Matcher()
    for sub in read_subscriptions(subscriptions):
        matcher.add(sub.id, sub)
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(events.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = AnyEvent.validate_python(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{events}:{number}: not valid JSON ({exc})") from None
        except ValidationError as exc:
            raise InputError(f"{events}:{number}: {describe_errors(exc)}") from None
        pairs.extend((event.id, subscription_id) for subscription_id in matcher.match(event))
    return sorted(pairs)


def read_subscriptions(path: Path) -> list[OfflineSubscription]:
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON array of subscriptions")
    try:
        return _Subscriptions.model_validate({"items": data}).items
    except ValidationError as exc:
        # loc is ("items", index, field): say "subscription 3: employers.0: ..."
        first = exc.errors()[0]
        index, *field = first["loc"][1:]
        where = ".".join(str(part) for part in field) or "subscription"
        raise InputError(
            f"{path}: subscription {int(index) + 1}: {where}: {first['msg']}"
        ) from None
