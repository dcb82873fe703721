"""What a subscriber asks for, validated before anything is stored.

`Criteria` is what matching reads; `SubscriptionIn` adds where to send alerts; `Subscription`
is what the store gives back. Validation errors name the field, so the CLI can
refuse bad input with a message a user can act on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import apprise
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from consumers.events import has_control_characters
from service.logs import apprise_lines_go_nowhere
from service.matching.normalize import words
from service.redaction import mask, scheme_of
from service.schedule import (
    Frequency,
    Schedule,
    Weekday,
    clock_time,
    quiet_hours,
    time_zone,
)
from service.targets import shipped_schemes

EventKinds = Literal["posting", "article"]


def _printable(value: str) -> str:
    if has_control_characters(value):
        raise ValueError("control characters are not allowed")
    return value


def _clock(value: str) -> str:
    return f"{clock_time(value):%H:%M}"


def _zone(value: str) -> str:
    time_zone(value)
    return value


def _quiet(value: str) -> str:
    start, end = quiet_hours(value)
    return f"{start:%H:%M}-{end:%H:%M}"


def _has_words(value: str) -> str:
    _printable(value)
    if not words(value):
        raise ValueError(f"{value!r} has no letters or digits, so it could never match")
    return value


Value = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_has_words),
]
ALL_KINDS: tuple[EventKinds, ...] = ("posting", "article")


class Criteria(BaseModel):
    """Which events a subscription wants: every field it sets must match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    employers: list[Value] = Field(default_factory=list, max_length=100)
    titles: list[Value] = Field(default_factory=list, max_length=100)
    cities: list[Value] = Field(default_factory=list, max_length=100)
    exclude: list[Value] = Field(default_factory=list, max_length=100)
    kinds: list[EventKinds] = Field(default_factory=lambda: list(ALL_KINDS), min_length=1)

    @model_validator(mode="after")
    def _wants_something(self) -> Criteria:
        if not (self.employers or self.titles or self.cities):
            raise ValueError("set at least one of employers, titles or cities")
        return self


_MASKED = apprise.AppriseAsset()
_UNMASKED = apprise.AppriseAsset(secure_logging=False)


def _plugin_for(url: str) -> object | None:
    """The notification service Apprise makes of `url`, or None if it cannot.

    Apprise masks a URL's secrets (CWE-312) for its own log lines before it parses it, and,
    asked to turn a plugin's errors into None, formats the plugin's URL for a debug line:
    whether a line is written or not, 0.18 ms and a quarter of what was left of a check.
    Where none of its lines can be shown, as every `jobwire` command sets logging, the check
    parses unmasked and takes a plugin's errors itself (a Slack URL: 101-122 µs before, 74-78
    after). Anywhere else (jobwire used as a library), Apprise masks and logs as it always does.
    """
    if not apprise_lines_go_nowhere():
        found: object | None = apprise.Apprise.instantiate(
            url, asset=_MASKED, suppress_exceptions=True
        )
        return found
    try:
        plugin: object | None = apprise.Apprise.instantiate(
            url, asset=_UNMASKED, suppress_exceptions=False
        )
    except Exception:
        return None  # what Apprise's None means: a URL it cannot use
    return plugin


def check_target(url: str) -> str:
    """Refuse an Apprise URL that Apprise cannot turn into a notification service."""
    url = url.strip()
    if _plugin_for(url) is None:
        scheme = scheme_of(url)
        hint = (
            f"unknown scheme {scheme!r}"
            if scheme and scheme not in shipped_schemes()
            else "Apprise could not parse it"
        )
        # The URL itself may carry a password, so the message shows only its masked form.
        raise ValueError(f"{hint}: {mask(url)}; see https://github.com/caronc/apprise/wiki")
    return url


Target = Annotated[
    str,
    StringConstraints(max_length=2000),
    AfterValidator(_printable),
    AfterValidator(check_target),
]


class ScheduleFields(BaseModel):
    """When a subscription's alerts go out (service/schedule.py), as people write it."""

    frequency: Frequency = Field(
        "instant", description="instant, or one digest hourly, daily (at `at`) or weekly."
    )
    at: Annotated[str, AfterValidator(_clock)] = Field(
        "08:00", description="Local time of a daily or weekly digest, HH:MM (24-hour)."
    )
    timezone: Annotated[str, AfterValidator(_zone)] = Field(
        "UTC", description="The subscriber's IANA time zone, e.g. Europe/Paris."
    )
    weekday: Weekday = Field("monday", description="Day of a weekly digest.")
    quiet_hours: Annotated[str, AfterValidator(_quiet)] | None = Field(
        None,
        description="Local HH:MM-HH:MM (e.g. 22:00-07:00): instant alerts that fall inside "
        "wait and go out as one digest when they end.",
    )

    def schedule(self) -> Schedule:
        return Schedule(
            frequency=self.frequency,
            at=clock_time(self.at),
            timezone=self.timezone,
            weekday=self.weekday,
            quiet=quiet_hours(self.quiet_hours) if self.quiet_hours else None,
        )


class SubscriptionIn(Criteria, ScheduleFields):
    """A new subscription as a user sends it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Asset protection in Portland",
                    "employers": ["Nordstrom"],
                    "titles": ["asset protection"],
                    "cities": ["Portland"],
                    "notify": ["slack://TokenA/TokenB/TokenC/#jobs"],
                }
            ]
        }
    )

    name: Annotated[str, AfterValidator(_printable)] = Field("", max_length=200)
    notify: list[Target] = Field(min_length=1, max_length=20)
    active: bool = True


class SubscriptionPatch(BaseModel):
    """A change to a subscription: only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    employers: list[str] | None = None
    titles: list[str] | None = None
    cities: list[str] | None = None
    exclude: list[str] | None = None
    kinds: list[EventKinds] | None = None
    notify: list[str] | None = None
    active: bool | None = None
    frequency: Frequency | None = None
    at: str | None = None
    timezone: str | None = None
    weekday: Weekday | None = None
    quiet_hours: str | None = None


class SubscriptionOut(BaseModel):
    """A subscription as shown to people: every target masked (service/redaction.py)."""

    id: str
    name: str
    employers: list[str]
    titles: list[str]
    cities: list[str]
    exclude: list[str]
    kinds: list[EventKinds]
    notify: list[str]
    active: bool
    frequency: Frequency
    at: str
    timezone: str
    weekday: Weekday
    quiet_hours: str | None
    # As a person would say it: "daily at 08:00 (Europe/Paris)".
    schedule: str
    owner: str | None
    created_at: datetime
    updated_at: datetime


class Subscription(SubscriptionIn):
    """A stored subscription. `target_ids` name its targets in the ledger, in `notify` order."""

    id: str
    owner: str | None = None
    created_at: datetime
    updated_at: datetime
    target_ids: list[int] = Field(default_factory=list)

    def public(self) -> SubscriptionOut:
        """The subscription as shown to people: every target masked."""
        return SubscriptionOut.model_validate(
            {
                **self.model_dump(),
                "notify": [mask(url) for url in self.notify],
                "schedule": self.schedule().describe(),
            }
        )
