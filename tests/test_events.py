"""Decoding Kafka bytes into events, and the reasons given for bytes that are not events."""

from __future__ import annotations

import orjson
import pytest

from consumers.events import Article, JobPosting, MalformedEvent, decode, encode


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
