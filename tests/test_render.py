"""What an alert says."""

from __future__ import annotations

from consumers.events import Article, JobPosting
from service.delivery import render


def test_a_posting_alert_names_employer_title_city_and_link() -> None:
    posting = JobPosting(
        id="p",
        employer="NORDSTROM",
        title="Asset Protection Agent",
        city="Portland",
        url="https://jobs.example.com/p",
    )
    message = render(posting, "Nordstrom in Portland", "https://jobwire.example.com/u/t")
    assert message.title == "New job: Asset Protection Agent at NORDSTROM, Portland"
    for part in ("NORDSTROM", "Asset Protection Agent", "Portland", "https://jobs.example.com/p"):
        assert part in message.body
    assert "Unsubscribe: https://jobwire.example.com/u/t" in message.body


def test_an_article_alert_names_headline_byline_and_link() -> None:
    article = Article(
        id="a",
        headline="Tencent news",
        byline="Reuters API",
        body="First paragraph.\nSecond.",
        url="https://news.example.com/a",
    )
    message = render(article)
    assert message.title == "News: Tencent news"
    assert "By Reuters API" in message.body
    assert "https://news.example.com/a" in message.body
    assert "First paragraph." in message.body
    assert "Second." not in message.body
