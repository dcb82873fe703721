"""When alerts are due: digests at the subscriber's local time, quiet hours, summer time."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from service.schedule import Schedule, clock_time, quiet_hours, time_zone


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_instant_alerts_are_due_at_once() -> None:
    now = utc("2026-11-25 12:00:00")
    assert Schedule().due(now) == (now, False)
    assert Schedule().is_plain


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-25 06:59:00", "2026-11-25 07:00:00"),  # 07:59 in Paris: 08:00 today
        ("2026-11-25 07:00:00", "2026-11-26 07:00:00"),  # exactly 08:00: the next one
        ("2026-11-25 22:30:00", "2026-11-26 07:00:00"),  # 23:30 in Paris: tomorrow
        ("2026-07-01 05:00:00", "2026-07-01 06:00:00"),  # summer time: 08:00 is 06:00 UTC
    ],
)
def test_a_daily_digest_is_due_at_the_local_time(now: str, expected: str) -> None:
    daily = Schedule("daily", time(8, 0), "Europe/Paris")
    assert daily.due(utc(now)) == (utc(expected), True)


def test_the_daily_time_follows_the_clock_change_in_the_subscribers_zone() -> None:
    daily = Schedule("daily", time(8, 0), "America/Chicago")
    # The night of 2026-11-01 Chicago leaves summer time (UTC-5 -> UTC-6).
    assert daily.next_digest(utc("2026-10-31 14:00:00")) == utc("2026-11-01 14:00:00")
    assert daily.next_digest(utc("2026-11-01 14:00:00")) == utc("2026-11-02 14:00:00")
    assert daily.next_digest(utc("2026-10-30 14:00:00")) == utc("2026-10-31 13:00:00")


def test_a_weekly_digest_waits_for_its_day() -> None:
    weekly = Schedule("weekly", time(9, 30), "Asia/Tokyo", weekday="monday")
    # Wednesday 2026-11-25 21:00 in Tokyo: next Monday 2026-11-30 09:30 JST = 00:30 UTC.
    assert weekly.next_digest(utc("2026-11-25 12:00:00")) == utc("2026-11-30 00:30:00")
    assert weekly.describe() == "weekly on Monday at 09:30 (Asia/Tokyo)"


def test_an_hourly_digest_is_due_at_the_top_of_the_local_hour() -> None:
    hourly = Schedule("hourly", timezone="Asia/Kolkata")  # UTC+05:30
    assert hourly.next_digest(utc("2026-11-25 12:10:00")) == utc("2026-11-25 12:30:00")
    assert hourly.next_digest(utc("2026-11-25 12:30:00")) == utc("2026-11-25 13:30:00")


def test_quiet_hours_hold_instant_alerts_until_they_end() -> None:
    quiet = Schedule(timezone="Europe/Paris", quiet=quiet_hours("22:00-07:00"))
    assert not quiet.is_plain
    # 23:30 in Paris: held until 07:00 tomorrow, as a digest.
    assert quiet.due(utc("2026-11-25 22:30:00")) == (utc("2026-11-26 06:00:00"), True)
    # 03:00 in Paris: held until 07:00 the same morning.
    assert quiet.due(utc("2026-11-26 02:00:00")) == (utc("2026-11-26 06:00:00"), True)
    # 12:00 in Paris: at once.
    noon = utc("2026-11-26 11:00:00")
    assert quiet.due(noon) == (noon, False)
    daytime = Schedule(quiet=quiet_hours("12:00-13:00"))
    assert daytime.due(utc("2026-11-26 12:30:00")) == (utc("2026-11-26 13:00:00"), True)


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (clock_time, "8am", "is not a time of day as HH:MM"),
        (clock_time, "24:00", "is not a time of day as HH:MM"),
        (quiet_hours, "22:00", "is not quiet hours as HH:MM-HH:MM"),
        (quiet_hours, "07:00-07:00", "must start and end at different times"),
        (time_zone, "Paris", "is not an IANA time zone name"),
        (time_zone, "../../etc/passwd", "is not an IANA time zone name"),
    ],
)
def test_bad_schedule_values_say_what_is_expected(parse: object, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(text)  # type: ignore[operator]
