"""The two kinds of event jobwire reads, and how raw Kafka bytes become one of them.

These schemas are the contract with the publishers: field names and which fields are required
must not change without a new topic or version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: Text
    url: str | None = None
    published_at: datetime | None = None


class JobPosting(_Event):
    """A new job posting on the `jobs.postings` topic."""

    kind: Literal["posting"] = "posting"
    employer: Text
    title: Text
    city: Text
    contract: str | None = None


class Article(_Event):
    """A new article on the `news.articles` topic."""

    kind: Literal["article"] = "article"
    headline: Text
    byline: str | None = None
    body: str = ""
    companies: list[str] = Field(default_factory=list)
    cities: list[str] = Field(default_factory=list)


Event = JobPosting | Article
EventKind = Literal["posting", "article"]

# For files that mix both kinds (samples, `jobwire publish`, `jobwire match`): the `kind` key says
# which schema applies.
AnyEvent = TypeAdapter(Annotated[JobPosting | Article, Field(discriminator="kind")])


MalformedCause = Literal["empty", "not_json", "not_an_object", "invalid_fields"]


class MalformedEvent(ValueError):
    """Bytes that are not a valid event; `reason` says why, for the dead-letter record, and
    `cause` which kind of mistake it is, a short fixed word (a metric's label)."""

    def __init__(self, reason: str, cause: MalformedCause = "invalid_fields") -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause: MalformedCause = cause


def decode(kind: EventKind, raw: bytes | None) -> Event:
    """Decode one Kafka message value into the event its topic carries."""
    if not raw:
        raise MalformedEvent("empty message", "empty")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"not valid JSON: {exc}", "not_json") from None
    if not isinstance(data, dict):
        raise MalformedEvent(f"expected a JSON object, got {type(data).__name__}", "not_an_object")
    data.pop("kind", None)
    model: type[JobPosting] | type[Article] = JobPosting if kind == "posting" else Article
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MalformedEvent(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> str:
    """One line naming every bad field, e.g. `employer: Field required; city: ...`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}" for err in exc.errors()
    )


def encode(event: Event) -> bytes:
    """The wire form of an event, without the `kind` key (the topic says the kind)."""
    return orjson.dumps(event.model_dump(mode="json", exclude={"kind"}, exclude_none=True))
