"""The sample messages `Renderer.check()` renders at start: every branch of the default
templates (optional fields present and absent, both kinds, a digest shortened to fit), with
text that needs escaping, so an override that breaks on any of them stops start-up."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from consumers.events import Article, Event, JobPosting
from service.delivery.render.message import Message

if TYPE_CHECKING:
    from service.delivery.render.renderer import Renderer

UNSUBSCRIBE = "https://jobwire.example.com/unsubscribe/sample.Zm9vYmFy"
MANAGE = "https://jobwire.example.com/subscriptions/sample"


def _at(hour: int, minute: int = 0) -> datetime:
    return datetime(2020, 10, 8, hour, minute, tzinfo=UTC)


POSTINGS: tuple[JobPosting, ...] = (
    JobPosting(
        id="sample-posting-1",
        employer="NORDSTROM",
        title="Asset Protection Agent - Cascade Station Rack",
        city="Portland",
        contract="Permanent",
        url="https://jobs.example.com/fashion/nordstrom/asset-protection-agent-004",
        published_at=_at(8, 28),
    ),
    JobPosting(
        id="sample-posting-2",
        employer="MACY'S",
        title="Manager, Asset Protection - Multi Store <Temecula & *Riverside*>",
        city="Temecula",
        published_at=_at(8, 14),
    ),
    JobPosting(
        id="sample-posting-3", employer="ROSS STORES", title="Loss Prevention", city="Dallas"
    ),
)

ARTICLES: tuple[Article, ...] = (
    Article(
        id="sample-article-1",
        headline="U.S. explores restrictions on Ant Group, Tencent payment platforms",
        byline="Reuters API",
        body="The United States is considering restrictions on China's Ant Group as well as "
        "Tencent Holdings Ltd over concerns their digital payment platforms threaten national "
        "security, Bloomberg News reported on Wednesday. "
        * 3
        + "\n\nSuch a move would mark a new deterioration in relations.",
        url="https://news.example.com/ant-tencent",
        companies=["Ant Group", "Tencent"],
        cities=["Hong Kong"],
        published_at=_at(9),
    ),
    Article(id="sample-article-2", headline="Retailers hire for the holidays"),
)


def sample_renders(renderer: Renderer) -> Iterator[tuple[str, str, Callable[[], Message]]]:
    """(template prefix, what it renders, how): each a message a real one could be."""
    for posting in POSTINGS:
        yield (
            "instant_posting",
            f"the sample posting {posting.id}",
            functools.partial(renderer.instant, posting, "Nordstrom in Portland", UNSUBSCRIBE),
        )
    for article in ARTICLES:
        yield (
            "instant_article",
            f"the sample article {article.id}",
            functools.partial(renderer.instant, article, "", None),
        )
    everything: tuple[Event, ...] = (*POSTINGS, *ARTICLES)
    digests: dict[str, Callable[[], Message]] = {
        "a digest of postings and articles": lambda: renderer.digest(
            "ROSS STORES", everything, UNSUBSCRIBE, MANAGE
        ),
        "a digest of postings only, without links": lambda: renderer.digest("", POSTINGS),
        "a digest of one article": lambda: renderer.digest("Tencent", ARTICLES[:1], UNSUBSCRIBE),
        "a digest shortened to fit a service": lambda: _shortened(
            renderer.digest("ROSS STORES", everything, UNSUBSCRIBE, MANAGE), 1
        ),
        "a digest shortened to nothing, without a manage link": lambda: _shortened(
            renderer.digest("ROSS STORES", everything, UNSUBSCRIBE), 0
        ),
    }
    for what, render in digests.items():
        yield "digest", what, render


def _shortened(message: Message, keep: int) -> Message:
    assert message.shorten is not None
    return message.shorten(keep)
