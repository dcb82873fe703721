"""What an alert says: pure functions from an event to a title and a body."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consumers.events import Article, Event, JobPosting


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    # Where the subscriber stops these alerts; email targets also get it as headers.
    unsubscribe_url: str | None = None


def render(
    event: Event, subscription_name: str = "", unsubscribe_url: str | None = None
) -> Message:
    """The alert for one event, as plain text that reads well in an inbox or a chat."""
    match event:
        case JobPosting():
            message = _posting(event)
        case Article():
            message = _article(event)
    footer = []
    if subscription_name:
        footer.append(f"You get this because of your jobwire subscription {subscription_name!r}.")
    if unsubscribe_url:
        footer.append(f"Unsubscribe: {unsubscribe_url}")
    if not footer:
        return message
    body = message.body + "\n\n--\n" + "\n".join(footer)
    return Message(message.title, body, unsubscribe_url)


def _posting(posting: JobPosting) -> Message:
    lines = [
        f"Employer: {posting.employer}",
        f"Title: {posting.title}",
        f"City: {posting.city}",
    ]
    if posting.contract:
        lines.append(f"Contract: {posting.contract}")
    if posting.url:
        lines.append(f"Link: {posting.url}")
    return Message(
        f"New job: {posting.title} at {posting.employer}, {posting.city}", "\n".join(lines)
    )


def _article(article: Article) -> Message:
    lines = [article.headline]
    if article.byline:
        lines.append(f"By {article.byline}")
    if article.body:
        summary = article.body.strip().split("\n", 1)[0]
        lines.append("")
        lines.append(summary if len(summary) <= 400 else summary[:397].rstrip() + "...")
    if article.url:
        lines.append("")
        lines.append(f"Link: {article.url}")
    return Message(f"News: {article.headline}", "\n".join(lines))


def render_test(subscription_name: str, unsubscribe_url: str | None = None) -> Message:
    """The alert `POST /subscriptions/{id}/test` sends, so a user sees a target works."""
    name = f" {subscription_name!r}" if subscription_name else ""
    body = (
        f"This is a test alert for your jobwire subscription{name}.\n"
        "Real alerts arrive like this one when a new posting or article matches."
    )
    if unsubscribe_url:
        body += f"\n\n--\nUnsubscribe: {unsubscribe_url}"
    return Message("jobwire test alert", body, unsubscribe_url)


def render_digest(
    events: Sequence[Event], subscription_name: str = "", unsubscribe_url: str | None = None
) -> Message:
    """One message for every match since the last digest, newest first, postings then
    articles."""
    postings = [e for e in events if isinstance(e, JobPosting)]
    articles = [e for e in events if isinstance(e, Article)]
    counts = []
    if postings:
        counts.append(f"{len(postings)} new posting{'s' if len(postings) != 1 else ''}")
    if articles:
        counts.append(f"{len(articles)} new article{'s' if len(articles) != 1 else ''}")
    about = f" for {subscription_name!r}" if subscription_name else ""
    lines: list[str] = []
    if postings:
        lines.append("Postings")
        lines.extend(
            f"- {p.title} at {p.employer}, {p.city}" + (f" {p.url}" if p.url else "")
            for p in postings
        )
    if articles:
        if lines:
            lines.append("")
        lines.append("Articles")
        lines.extend(f"- {a.headline}" + (f" {a.url}" if a.url else "") for a in articles)
    if unsubscribe_url:
        lines.extend(["", "--", f"Unsubscribe: {unsubscribe_url}"])
    title = f"jobwire digest{about}: {' and '.join(counts)}"
    return Message(title, "\n".join(lines), unsubscribe_url)
