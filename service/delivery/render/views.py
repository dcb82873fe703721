"""What templates see of an event: its fields, made safe and ready to print.

Templates get these small read-only objects, not the pydantic models: the sandbox then has
nothing to reach beyond plain fields (no `model_dump`, no validators), a link is only ever an
http(s) address (a `javascript:` URL from a publisher never becomes a clickable link), and the
article's summary is cut once, here, the same way for every format.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from consumers.events import Article, Event, JobPosting

# The longest summary of an article in an instant alert, in characters.
SUMMARY_CHARS = 400
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class PostingView:
    id: str
    employer: str
    title: str
    city: str
    contract: str | None
    url: str | None
    published_at: datetime | None
    kind: str = "posting"


@dataclass(frozen=True, slots=True)
class ArticleView:
    id: str
    headline: str
    byline: str | None
    summary: str
    url: str | None
    published_at: datetime | None
    companies: tuple[str, ...]
    cities: tuple[str, ...]
    kind: str = "article"


def view(event: Event, summary_chars: int = SUMMARY_CHARS) -> PostingView | ArticleView:
    match event:
        case JobPosting():
            return PostingView(
                id=event.id,
                employer=event.employer,
                title=event.title,
                city=event.city,
                contract=event.contract or None,
                url=web_link(event.url),
                published_at=event.published_at,
            )
        case Article():
            return ArticleView(
                id=event.id,
                headline=event.headline,
                byline=event.byline or None,
                summary=shorten_words(first_paragraph(event.body), summary_chars),
                url=web_link(event.url),
                published_at=event.published_at,
                companies=tuple(event.companies),
                cities=tuple(event.cities),
            )


def web_link(url: str | None) -> str | None:
    """The URL if a reader can safely follow it (http or https), else None."""
    if url and url.strip().lower().startswith(("https://", "http://")):
        return url.strip()
    return None


def first_paragraph(body: str) -> str:
    """The first paragraph of an article's body, on one line."""
    return " ".join(body.strip().split("\n", 1)[0].split())


def shorten_words(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, cut between words with "…" when it is longer.

    Never cuts a word: a first word longer than the limit leaves only the "…".
    """
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    room = text[: limit - len(ELLIPSIS) + 1]  # +1: a space right after the cut is a boundary
    cut = max(room.rfind(" "), room.rfind("\n"))
    kept = room[:cut].rstrip(" \n,;:.-–—") if cut > 0 else ""
    return kept + ELLIPSIS
