"""Decoding Kafka bytes into events, and the reasons given for bytes that are not events."""

from __future__ import annotations

import orjson
import pytest

from consumers.events import (
    AnyEvent,
    Article,
    EventKind,
    JobPosting,
    MalformedEvent,
    decode,
    encode,
    stored_json,
)


def test_a_posting_from_the_sample_decodes_with_its_fields(
    sample_lines: list[dict[str, object]],
) -> None:
    line = dict(sample_lines[3])
    line.pop("kind")
    event = decode("posting", orjson.dumps(line))
    assert isinstance(event, JobPosting)
    assert (event.employer, event.city) == ("NORDSTROM", "Portland")
    assert event.title == "Asset Protection Agent - Cascade Station Rack"


def test_an_article_needs_only_id_and_headline() -> None:
    event = decode("article", b'{"id": "a1", "headline": "Tencent news"}')
    assert isinstance(event, Article)
    assert event.companies == []
    assert event.body == ""


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message"),
        (b'{"id": "x", "employer": ', "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'{"id": "x", "title": "Agent", "city": "Portland"}', "employer: Field required"),
        (
            b'{"id": "x", "employer": "  ", "title": "Agent", "city": "P"}',
            "employer: String should have at least 1 character",
        ),
        (
            b'{"id": "x", "employer": "A", "title": "B", "city": "C", "published_at": "yesterday"}',
            "published_at",
        ),
    ],
)
def test_malformed_bytes_are_refused_with_a_reason_naming_the_problem(
    raw: bytes, reason: str
) -> None:
    with pytest.raises(MalformedEvent) as caught:
        decode("posting", raw)
    assert reason in caught.value.reason


def test_encode_then_decode_gives_the_same_event() -> None:
    posting = JobPosting(
        id="p1", employer="ROSS STORES", title="Store Protection Specialist", city="Dallas"
    )
    assert decode("posting", encode(posting)) == posting
    assert b"kind" not in encode(posting)


def _posting(**fields: object) -> bytes:
    return orjson.dumps(
        {"id": "p1", "employer": "ROSS", "title": "Cashier", "city": "Ely", **fields}
    )


def _article(**fields: object) -> bytes:
    return orjson.dumps({"id": "a1", "headline": "Ross opens a store", **fields})


@pytest.mark.parametrize(
    ("kind", "raw", "field"),
    [
        ("posting", _posting(id="x" * 201), "id: String should have at most 200 characters"),
        ("posting", _posting(id="p\x001"), "id: Value error, control characters"),
        ("posting", _posting(employer="R" * 501), "employer: String should have at most 500"),
        ("posting", _posting(title="Cash\x00ier"), "title: Value error, control characters"),
        ("posting", _posting(city="Ely\nBcc: x"), "city: Value error, control characters"),
        ("posting", _posting(contract="full time\n"), "contract: Value error, control"),
        ("posting", _posting(contract="c" * 501), "contract: String should have at most 500"),
        ("posting", _posting(url="https://x/" + "a" * 2048), "url: String should have at most"),
        (
            "posting",
            _posting(published_at="0001-01-01T00:00:00"),
            "published_at: Input should be greater than or equal to 1970",
        ),
        (
            "posting",
            _posting(published_at="9999-12-31T00:00:00Z"),
            "published_at: Input should be less than 2200",
        ),
        ("article", _article(headline="H" * 501), "headline: String should have at most 500"),
        ("article", _article(byline="B\x00"), "byline: Value error, control characters"),
        ("article", _article(body="b" * 100_001), "body: String should have at most 100000"),
        ("article", _article(body="line\n\x00"), "body: Value error, NUL characters"),
        ("article", _article(companies=["c"] * 101), "companies: List should have at most 100"),
        ("article", _article(cities=["x" * 501]), "cities.0: String should have at most 500"),
        ("article", _article(companies=["A\x00"]), "companies.0: Value error, control"),
    ],
)
def test_fields_the_store_could_not_keep_are_refused_naming_the_field(
    kind: str, raw: bytes, field: str
) -> None:
    with pytest.raises(MalformedEvent) as caught:
        decode(kind, raw)  # type: ignore[arg-type]
    assert field in caught.value.reason
    assert len(caught.value.reason) < 300  # the reason does not carry the oversized value


def test_fields_at_their_limits_are_accepted() -> None:
    posting = decode(
        "posting",
        _posting(id="x" * 200, employer="E" * 500, published_at="2026-01-02T03:04:05Z"),
    )
    assert isinstance(posting, JobPosting)
    assert len(posting.id) == 200
    article = decode(
        "article",
        _article(body="first line\n\tsecond\r\n" + "b" * 99_000, companies=["c"] * 100),
    )
    assert isinstance(article, Article)
    assert len(article.companies) == 100


@pytest.mark.parametrize(
    ("published_at", "accepted"),
    [
        ("1970-01-01T00:00:00", True),
        ("1969-12-31T23:59:59", False),
        ("1970-01-01T00:00:00-00:01", True),  # 00:01 UTC
        ("2199-12-31T23:59:59", True),
        ("2200-01-01T00:00:00", False),
        ("2199-12-31T23:59:59-00:01", False),  # 2200-01-01 00:00:59 UTC
    ],
)
def test_a_publication_time_without_a_zone_is_read_as_utc_at_the_edges_of_the_range(
    published_at: str, accepted: bool
) -> None:
    raw = _posting(published_at=published_at)
    if accepted:
        assert decode("posting", raw).published_at is not None
    else:
        with pytest.raises(MalformedEvent, match="published_at"):
            decode("posting", raw)


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("posting", _posting()),
        (
            "posting",
            _posting(
                employer="Café Ünïcode ☃ 😀",
                title='Quote " backslash \\ line\u2028separator',
                url="https://jobs.example.com/é?q=1&r=<script>",
                contract="full time",
                published_at="2026-11-27T10:00:00.123456Z",
            ),
        ),
        ("posting", _posting(published_at="2026-11-27T10:00:00")),  # no zone given
        ("posting", _posting(published_at="2026-11-27T10:00:00.5+05:30")),
        ("posting", _posting(published_at=1_700_000_000)),
        ("article", _article()),
        (
            "article",
            _article(
                body="line\nbreak\ttab",
                byline=None,
                companies=["A", "Ünï"],
                cities=["", "Zürich"],
                published_at="2199-12-31T23:59:59.999999Z",
            ),
        ),
    ],
)
def test_the_json_an_event_is_stored_as_is_pydantics_to_the_character(
    kind: EventKind, raw: bytes
) -> None:
    event = decode(kind, raw)
    # What the store kept before stored_json, so events stored then and now read alike.
    assert stored_json(event) == event.model_dump_json()
    assert AnyEvent.validate_json(stored_json(event)) == event
