"""When a subscription's alerts are due: at once, or in a digest at the subscriber's own time.

A subscription is `instant` (each match is sent as it comes), `hourly`, `daily` at a local
time, or `weekly` on a day at a local time, in the subscriber's time zone (an IANA name, read
with `zoneinfo`, so summer time is followed). Quiet hours (e.g. 22:00–07:00 local) hold instant
alerts back: what matches inside them goes out as one digest when they end.

Pure functions of a schedule and a moment (naive UTC, the store's form): no clock, no I/O, so
tests step through days and daylight-saving changes without waiting.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

Frequency = Literal["instant", "hourly", "daily", "weekly"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def clock_time(text: str) -> time:
    """`HH:MM` (24-hour) as a time; ValueError saying the form otherwise."""
    found = _CLOCK.fullmatch(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a time of day as HH:MM (24-hour), e.g. 08:00")
    return time(int(found[1]), int(found[2]))


def quiet_hours(text: str) -> tuple[time, time]:
    """`HH:MM-HH:MM` as (start, end); the end may be the next day (22:00-07:00)."""
    start, sep, end = text.strip().partition("-")
    if not sep:
        raise ValueError(f"{text!r} is not quiet hours as HH:MM-HH:MM, e.g. 22:00-07:00")
    first, last = clock_time(start), clock_time(end)
    if first == last:
        raise ValueError("quiet hours must start and end at different times")
    return first, last


@functools.cache
def _zone_names() -> frozenset[str]:
    # available_timezones() walks the whole tzdata tree (about 9 ms): once per process, not
    # once for each subscription validated on the event loop.
    return frozenset(available_timezones())


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (e.g. Europe/Paris); ValueError naming it otherwise."""
    try:
        if name in _zone_names() or name == "UTC":
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    raise ValueError(
        f"{name!r} is not an IANA time zone name, e.g. Europe/Paris or America/Chicago"
    )


@dataclass(frozen=True, slots=True)
class Schedule:
    frequency: Frequency = "instant"
    at: time = time(8, 0)
    timezone: str = "UTC"
    weekday: Weekday = "monday"
    quiet: tuple[time, time] | None = None

    @property
    def is_plain(self) -> bool:
        """Instant with no quiet hours: every alert is due when it matches."""
        return self.frequency == "instant" and self.quiet is None

    def due(self, now: datetime) -> tuple[datetime, bool]:
        """When an alert matched at `now` is due, and whether it goes in a digest."""
        if self.frequency != "instant":
            return self.next_digest(now), True
        quiet_end = self.quiet_until(now)
        if quiet_end is not None:
            return quiet_end, True
        return now, False

    def next_digest(self, now: datetime) -> datetime:
        """The first digest time strictly after `now`."""
        zone = ZoneInfo(self.timezone)
        local = _local(now, zone)
        if self.frequency == "hourly":
            top = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            return _utc(top)
        day = local.date()
        for offset in range(8):
            candidate_day = day + timedelta(days=offset)
            if self.frequency == "weekly" and WEEKDAYS[candidate_day.weekday()] != self.weekday:
                continue
            candidate = _at(candidate_day, self.at, zone)
            if candidate > now:
                return candidate
        raise AssertionError("a daily or weekly time comes within eight days")

    def quiet_until(self, now: datetime) -> datetime | None:
        """When the quiet hours `now` falls in end, or None if it falls in none."""
        if self.quiet is None:
            return None
        start, end = self.quiet
        zone = ZoneInfo(self.timezone)
        local = _local(now, zone)
        moment = local.time()
        overnight = start > end
        inside = (moment >= start or moment < end) if overnight else (start <= moment < end)
        if not inside:
            return None
        end_day = local.date()
        if overnight and moment >= start:
            end_day += timedelta(days=1)
        return _at(end_day, end, zone)

    def describe(self) -> str:
        """As a person would say it: "daily at 08:00 (Europe/Paris)"."""
        match self.frequency:
            case "instant":
                said = "instant"
            case "hourly":
                said = "hourly"
            case "daily":
                said = f"daily at {self.at:%H:%M}"
            case "weekly":
                said = f"weekly on {self.weekday.capitalize()} at {self.at:%H:%M}"
        if self.frequency in ("daily", "weekly") or self.quiet:
            said += f" ({self.timezone})"
        if self.quiet:
            said += f", quiet {self.quiet[0]:%H:%M}-{self.quiet[1]:%H:%M}"
        return said


def _local(now: datetime, zone: ZoneInfo) -> datetime:
    return now.replace(tzinfo=UTC).astimezone(zone)


def _utc(local: datetime) -> datetime:
    return local.astimezone(UTC).replace(tzinfo=None)


def _at(day: date, at: time, zone: ZoneInfo) -> datetime:
    """`at` on `day` in `zone`, as naive UTC. A time that happens twice (the night summer time
    ends) is the first of the two; a time the clocks skip (02:30 the night it starts) is read
    with the offset before the change, so it comes an hour later by the new clock (03:30)."""
    return _utc(datetime.combine(day, at, tzinfo=zone))
