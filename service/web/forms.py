"""The web page's forms: reading them, turning them into what the registry takes, and saying
what is wrong next to each field in words a person understands.

Forms arrive as `application/x-www-form-urlencoded` (no file uploads, so no multipart parser);
the body is already bounded by the app's BodyLimit. Several values of a field are typed in one
box, separated by commas ("Nordstrom, Macy's").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request

from service.registry import LISTED_FIELDS, Problem
from service.subscriptions import ALL_KINDS, Subscription

MAX_FIELDS = 200
LISTS = LISTED_FIELDS  # employers, titles, cities, exclude
SCHEDULE = ("frequency", "at", "timezone", "weekday")
# Every field of the subscription form, in the order the page shows them (and errors too).
FIELDS = ("email", "name", *LISTS, "kinds", *SCHEDULE, "quiet_from", "quiet_to", "notify")
LABELS = {
    "email": "Email address",
    "name": "Name of this alert",
    "employers": "Employers",
    "titles": "Job titles",
    "cities": "Cities",
    "exclude": "Leave out titles with",
    "kinds": "What to get",
    "frequency": "How often",
    "at": "At",
    "timezone": "Time zone",
    "weekday": "Day",
    "quiet_from": "Quiet from",
    "quiet_to": "Quiet until",
    "notify": "Chat or webhook URL",
    "label": "Name of the key",
}


class FormError(Exception):
    """A body that is not a form this page sends (too many fields, not urlencoded)."""


@dataclass(frozen=True)
class Form:
    """A submitted form: every value of each field, as typed."""

    values: Mapping[str, list[str]]

    def one(self, name: str) -> str:
        found = self.values.get(name)
        return found[-1].strip() if found else ""

    def all(self, name: str) -> list[str]:
        return [value.strip() for value in self.values.get(name, [])]


def parse_form(body: bytes) -> Form:
    try:
        pairs = parse_qsl(
            body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FIELDS
        )
    except ValueError:
        raise FormError(f"a form has at most {MAX_FIELDS} fields") from None
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    return Form(values)


async def read_form(request: Request) -> Form:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return Form({})
    return parse_form(await request.body())


# -- email addresses -------------------------------------------------------------------------

# The common form (RFC 5321's dot-atom local part, a domain of labels): strict enough that it
# can go into a URL's `to=` and an SMTP envelope, loose enough for every address people use.
_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)


def email_address(text: str) -> tuple[str, str | None]:
    """The address, lower-cased, and what is wrong with it (None if nothing)."""
    address = text.strip().lower()
    if not address:
        return address, "Type the email address your alerts should go to."
    if len(address) > 254 or len(address.partition("@")[0]) > 64:
        return address, "This address is too long for email."
    if not _EMAIL.fullmatch(address):
        return address, "Type a whole email address, like ana@example.com."
    return address, None


# -- the subscription form -------------------------------------------------------------------


def split_values(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass
class SubscriptionForm:
    """The subscription form as typed (to show it again) and what is wrong, by field."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def blank(cls) -> SubscriptionForm:
        return cls(
            {
                "email": "",
                "name": "",
                **dict.fromkeys(LISTS, ""),
                "kinds": list(ALL_KINDS),
                "frequency": "instant",
                "at": "08:00",
                "timezone": "UTC",
                "weekday": "monday",
                "quiet_from": "",
                "quiet_to": "",
                "notify": "",
            }
        )

    @classmethod
    def of(cls, sub: Subscription) -> SubscriptionForm:
        start, _, end = (sub.quiet_hours or "").partition("-")
        form = cls.blank()
        form.values.update(
            {
                "name": sub.name,
                **{name: ", ".join(getattr(sub, name)) for name in LISTS},
                "kinds": list(sub.kinds),
                "frequency": sub.frequency,
                "at": sub.at,
                "timezone": sub.timezone,
                "weekday": sub.weekday,
                "quiet_from": start,
                "quiet_to": end,
            }
        )
        return form

    @classmethod
    def read(cls, form: Form, values_per_field: int) -> SubscriptionForm:
        read = cls.blank()
        read.values.update({name: form.one(name) for name in ("email", "name", *LISTS)})
        read.values.update({name: form.one(name) or read.values[name] for name in SCHEDULE})
        read.values["kinds"] = [kind for kind in form.all("kinds") if kind in ALL_KINDS]
        read.values["quiet_from"] = form.one("quiet_from")
        read.values["quiet_to"] = form.one("quiet_to")
        for name in LISTS:
            if len(split_values(read.values[name])) > values_per_field:
                read.errors[name] = f"At most {values_per_field} here, separated by commas."
        if not any(split_values(read.values[name]) for name in ("employers", "titles", "cities")):
            read.errors["employers"] = "Type at least one employer, job title or city to follow."
        if bool(read.values["quiet_from"]) != bool(read.values["quiet_to"]):
            missing = "quiet_to" if read.values["quiet_from"] else "quiet_from"
            read.errors[missing] = "Set when quiet hours start and when they end, or neither."
        return read

    def fields(self) -> dict[str, Any]:
        """What the form asks for, as SubscriptionIn / SubscriptionPatch fields (no targets)."""
        start, end = self.values["quiet_from"], self.values["quiet_to"]
        return {
            "name": self.values["name"] or self.default_name(),
            **{name: split_values(self.values[name]) for name in LISTS},
            "kinds": self.values["kinds"],
            "frequency": self.values["frequency"],
            "at": self.values["at"],
            "timezone": self.values["timezone"],
            "weekday": self.values["weekday"],
            "quiet_hours": f"{start}-{end}" if start and end else None,
        }

    def criteria(self) -> dict[str, Any]:
        """Only what matching reads: for the preview."""
        fields = self.fields()
        return {name: fields[name] for name in (*LISTS, "kinds")}

    def default_name(self) -> str:
        """A name people recognise in their inbox: "NORDSTROM in Portland"."""
        what = [*split_values(self.values["employers"]), *split_values(self.values["titles"])]
        where = split_values(self.values["cities"])
        name = ", ".join(what[:3]) or "Alerts"
        if where:
            name += " in " + ", ".join(where[:3])
        return name[:200]

    def add_problems(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            name, message = in_words(problem)
            self.errors.setdefault(name, message)

    def ordered_errors(self) -> list[tuple[str, str]]:
        """Errors in the order the fields are on the page, for the summary at its top."""
        return sorted(
            self.errors.items(), key=lambda item: FIELDS.index(item[0]) if item[0] in FIELDS else 99
        )


_AT_MOST_CHARS = re.compile(r"String should have at most (\d+) characters?")
_AT_MOST_ITEMS = re.compile(r"List should have at most (\d+) items?")


def in_words(problem: Problem) -> tuple[str, str]:
    """The form field a registry or validation problem is about, and what to do about it."""
    name = problem.field.split(".", 1)[0]
    message = problem.message
    if name in ("body", "") or "at least one of employers, titles or cities" in message:
        return "employers", "Type at least one employer, job title or city to follow."
    if name == "quiet_hours":
        name = "quiet_from"
    if found := _AT_MOST_CHARS.search(message):
        return name, f"Each one can be at most {found[1]} characters long."
    if found := _AT_MOST_ITEMS.search(message):
        return name, f"At most {found[1]} here."
    if "at least 1 item" in message:
        if name == "kinds":
            return name, "Choose job postings, news articles or both."
        return name, "Keep at least one place to send alerts."
    if name == "frequency":
        return name, "Choose how often you want alerts."
    if name == "weekday":
        return name, "Choose a day of the week."
    if "control characters" in message:
        return name, "Take out the control characters (tabs, line breaks) from this."
    text = message[:1].upper() + message[1:]
    return name, text if text.endswith((".", "?", "!")) else text + "."
