"""What real servers receive when the notifier sends rendered alerts and digests: a mail
server one multipart email, a webhook Markdown, a Matrix room (Synapse) formatted messages,
each within what the server accepts."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from apprise.conversion import html_to_text

from consumers.events import Article, Event, JobPosting
from devstack.sinks import HttpSink, SmtpSink
from devstack.synapse import MatrixRoom
from service.delivery import AppriseNotifier, Renderer
from service.targets import TargetPolicy
from tests.integration.conftest import chat_target, mail_target

pytestmark = pytest.mark.integration

UNSUBSCRIBE = "https://jobwire.example.com/unsubscribe/s1.bWFjbWFj"
MANAGE = "https://jobwire.example.com/subscriptions/s1"
HTML = "org.matrix.custom.html"


def postings(count: int) -> list[Event]:
    start = datetime(2020, 10, 8, 8, tzinfo=UTC)
    return [
        JobPosting(
            id=f"p{n}",
            employer="ROSS STORES",
            title=f"Loss Prevention Associate {n:04d}",
            city="Dallas",
            url=f"https://jobs.example.com/ross/{n}",
            published_at=start + timedelta(minutes=n),
        )
        for n in range(count)
    ]


ARTICLE = Article(
    id="a1",
    headline="Ross Stores opens 20 stores",
    byline="Reuters API",
    body="Ross Stores said on Tuesday it opened 20 new stores. " * 4,
    url="https://news.example.com/ross-20",
)


@pytest.fixture
async def notifier() -> AsyncIterator[AppriseNotifier]:
    # Every sink is on loopback, which a real deployment's policy refuses.
    policy = TargetPolicy(["mailto", "json", "matrix"], allow_private_hosts=True)
    sender = AppriseNotifier(policy, concurrency=2, timeout_s=60)
    yield sender
    sender.close()


async def test_an_email_digest_of_50_postings_is_one_multipart_message_with_both_parts(
    smtp_sink: SmtpSink, notifier: AppriseNotifier
) -> None:
    events = postings(50)
    digest = Renderer().digest("ROSS STORES", events, UNSUBSCRIBE, MANAGE)

    await notifier.send(mail_target(smtp_sink, "ana@example.com"), digest)

    [mail] = await asyncio.to_thread(smtp_sink.wait_for, 1, 30)
    assert mail.subject == "50 new postings for 'ROSS STORES'"
    assert mail.message.get_content_type() == "multipart/alternative"
    text = mail.message.get_body(preferencelist=("plain",))
    html = mail.message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    text_part, html_part = text.get_content(), html.get_content()
    newest_first = [f"{n:04d}" for n in range(49, -1, -1)]
    assert re.findall(r"Associate (\d{4})", text_part) == newest_first
    assert re.findall(r"Associate (\d{4})</strong></a>", html_part) == newest_first
    for event in events:
        assert isinstance(event, JobPosting)
        assert f'<a href="{event.url}">' in html_part  # clickable
        assert f"{event.url}\n" in text_part  # and written out
    # The unsubscribe link in both parts, clickable in the HTML, and in the headers.
    assert f'<a href="{UNSUBSCRIBE}">{UNSUBSCRIBE}</a>' in html_part
    assert f"Unsubscribe: {UNSUBSCRIBE}" in text_part
    assert mail.message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # The text part is the HTML's words and every address, with its line breaks.
    assert len(text_part.splitlines()) > 100


async def test_an_instant_email_alert_has_its_link_and_the_unsubscribe_link_in_both_parts(
    smtp_sink: SmtpSink, notifier: AppriseNotifier
) -> None:
    alert = Renderer().instant(ARTICLE, "Ross", UNSUBSCRIBE)

    await notifier.send(mail_target(smtp_sink, "ana@example.com"), alert)

    [mail] = await asyncio.to_thread(smtp_sink.wait_for, 1, 30)
    assert mail.subject == "News: Ross Stores opens 20 stores"
    html = mail.message.get_body(preferencelist=("html",))
    assert html is not None
    assert f'<a href="{ARTICLE.url}">' in html.get_content()
    assert f"Link: {ARTICLE.url}" in mail.body
    assert f"Unsubscribe: {UNSUBSCRIBE}" in mail.body
    assert mail.message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"


async def test_a_webhook_receives_the_digest_as_markdown(
    http_sink: HttpSink, notifier: AppriseNotifier
) -> None:
    digest = Renderer().digest("ROSS STORES", [*postings(3), ARTICLE], UNSUBSCRIBE, MANAGE)

    await notifier.send(chat_target(http_sink, "hook"), digest)

    [request] = await asyncio.to_thread(http_sink.wait_for, 1, 30)
    assert request.json["title"] == "3 new postings and 1 article for 'ROSS STORES'"
    message = request.json["message"]
    assert message == digest.markdown
    assert (
        "- **[Loss Prevention Associate 0002](https://jobs.example.com/ross/2)** at ROSS STORES, "
        "Dallas" in message
    )
    assert f"[Unsubscribe]({UNSUBSCRIBE})" in message
    assert "List-Unsubscribe" not in request.path  # headers are for email only


async def test_a_webhook_too_small_for_the_digest_gets_it_shortened_not_cut(
    http_sink: HttpSink, notifier: AppriseNotifier
) -> None:
    digest = Renderer().digest("ROSS STORES", postings(2000), UNSUBSCRIBE, MANAGE)

    await notifier.send(chat_target(http_sink, "hook"), digest)

    [request] = await asyncio.to_thread(http_sink.wait_for, 1, 30)
    message = request.json["message"]
    assert len(message) <= 32768  # Apprise's limit for json://
    kept = re.findall(r"Associate (\d{4})", message)
    assert kept == [f"{n:04d}" for n in range(1999, 1999 - len(kept), -1)]
    assert f"…and {2000 - len(kept)} more: [{MANAGE}]({MANAGE})" in message


async def test_a_matrix_room_receives_the_alert_and_the_digest_formatted(
    matrix_room: MatrixRoom, notifier: AppriseNotifier
) -> None:
    renderer = Renderer()
    target = matrix_room.url(token=True)
    alert = renderer.instant(postings(1)[0], "Ross", UNSUBSCRIBE)
    digest = renderer.digest("ROSS STORES", [*postings(5), ARTICLE], UNSUBSCRIBE, MANAGE)

    await notifier.send(target, alert)
    await notifier.send(target, digest)

    first, second = await asyncio.to_thread(matrix_room.wait_for_messages, 2, 30)
    assert first.format == second.format == HTML
    assert first.formatted_body is not None
    assert second.formatted_body is not None
    assert first.formatted_body.startswith(
        "<h1>New job: Loss Prevention Associate 0000 at ROSS STORES, Dallas</h1>"
    )
    assert '<a href="https://jobs.example.com/ross/0">' in first.formatted_body
    assert f'<a href="{UNSUBSCRIBE}">Unsubscribe</a>' in first.formatted_body
    assert unescape(second.formatted_body).startswith(
        "<h1>5 new postings and 1 article for 'ROSS STORES'</h1>"
    )
    links = re.findall(r'<a href="https://jobs\.example\.com/ross/(\d)">', second.formatted_body)
    assert links == ["4", "3", "2", "1", "0"]
    assert '<a href="https://news.example.com/ross-20">' in second.formatted_body
    # Clients without HTML read the same words.
    assert "Loss Prevention Associate 0004 at ROSS STORES, Dallas" in second.body
    assert second.body.startswith("# 5 new postings and 1 article for 'ROSS STORES'")


@pytest.mark.parametrize("token", [True, False], ids=["token-url", "password-url"])
async def test_every_message_to_a_matrix_room_arrives(
    matrix_room: MatrixRoom, notifier: AppriseNotifier, token: bool
) -> None:
    # The notifier keeps one Apprise plugin per target: each send must be a new Matrix event.
    renderer = Renderer()
    target = matrix_room.url(token=token)

    for posting in postings(3):
        await notifier.send(target, renderer.instant(posting, "Ross", UNSUBSCRIBE))

    messages = await asyncio.to_thread(matrix_room.wait_for_messages, 3, 30)
    assert [m.body.split("\r\n")[0] for m in messages] == [
        f"# New job: Loss Prevention Associate {n:04d} at ROSS STORES, Dallas" for n in range(3)
    ]


async def test_a_digest_too_long_for_one_matrix_event_arrives_as_one_shortened_message(
    matrix_room: MatrixRoom, notifier: AppriseNotifier
) -> None:
    digest = Renderer().digest("ROSS STORES", postings(2000), UNSUBSCRIBE, MANAGE)

    await notifier.send(matrix_room.url(token=True), digest)

    [message] = await asyncio.to_thread(matrix_room.wait_for_messages, 1, 30)
    assert message.formatted_body is not None
    kept = re.findall(r"Associate (\d{4})", message.formatted_body)
    assert 100 < len(kept) < 2000
    assert kept == [f"{n:04d}" for n in range(1999, 1999 - len(kept), -1)]
    assert f"…and {2000 - len(kept)} more" in html_to_text(message.formatted_body)
    # Nothing more came: the rest was not sent as a second part.
    assert len(matrix_room.messages()) == 1
