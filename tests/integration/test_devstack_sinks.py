"""The mail catcher and the webhook sink receive what Apprise really sends, outages included."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import apprise
import pytest

from devstack.sinks import HttpSink, SmtpSink

pytestmark = pytest.mark.integration


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink(maildir=tmp_path / "mail") as sink:
        yield sink


@pytest.fixture
def chat() -> Iterator[HttpSink]:
    with HttpSink() as sink:
        yield sink


def send(url: str, title: str, body: str) -> bool:
    # A fresh Apprise object per send: a plugin instance sleeps ~5.5 s between two sends of
    # its own (email), which would make the outage tests slow for no reason.
    notifier = apprise.Apprise()
    assert notifier.add(url), f"Apprise rejected {url}"
    # TEXT: otherwise the email plugin takes the body for HTML and its plain-text part loses
    # the line breaks.
    return bool(notifier.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT))


def mailto(sink: SmtpSink, to: str = "alice@example.com") -> str:
    # mailto:// (not mailtos://) is plain SMTP: no STARTTLS, no login.
    return f"mailto://127.0.0.1:{sink.port}?from=jobwire@example.com&to={to}"


def test_an_email_sent_with_apprise_arrives_whole(mail: SmtpSink) -> None:
    body = "Asset Protection Agent at NORDSTROM, Portland\nLink: https://jobs.example.com/1"

    assert send(mailto(mail), "New job: Asset Protection Agent", body)

    [received] = mail.wait_for(1, timeout=10)
    assert received.from_ == "jobwire@example.com"
    assert received.to == "alice@example.com"
    assert received.recipients == ["alice@example.com"]
    assert received.subject == "New job: Asset Protection Agent"
    assert received.body.splitlines() == body.splitlines()
    [saved] = (mail.maildir or Path()).glob("*.eml")
    assert b"Link: https://jobs.example.com/1" in saved.read_bytes()


def test_a_chat_message_arrives_as_apprise_json(chat: HttpSink) -> None:
    url = chat.url.replace("http://", "json://") + "/hook"

    assert send(url, "New job: Store Protection Specialist", "ROSS STORES, Dallas")

    [post] = chat.wait_for(1, timeout=10)
    assert (post.method, post.path) == ("POST", "/hook")
    assert post.headers["Content-Type"] == "application/json"
    assert post.json["title"] == "New job: Store Protection Specialist"
    assert post.json["message"] == "ROSS STORES, Dallas"
    assert post.json["type"] == "info"


def test_a_failing_chat_service_makes_apprise_report_failure(chat: HttpSink) -> None:
    url = chat.url.replace("http://", "json://") + "/hook"
    chat.fail_with(500)

    assert not send(url, "lost", "answered 500")
    assert chat.rejected == 1
    assert chat.requests == []

    chat.fail_with(None)
    assert send(url, "delivered", "answered 200")
    assert [post.json["title"] for post in chat.requests] == ["delivered"]


def test_the_mail_catcher_comes_back_on_the_same_port_after_an_outage(mail: SmtpSink) -> None:
    url = mailto(mail)
    port = mail.port

    mail.stop()
    assert not send(url, "lost", "nobody listens")

    mail.start()
    assert mail.port == port
    assert send(url, "delivered", "listening again")
    assert [m.subject for m in mail.wait_for(1, timeout=10)] == ["delivered"]


def test_the_webhook_sink_comes_back_on_the_same_port_after_an_outage(chat: HttpSink) -> None:
    url = chat.url.replace("http://", "json://") + "/hook"
    before = chat.url

    chat.stop()
    assert not send(url, "lost", "nobody listens")

    chat.start()
    assert chat.url == before
    assert send(url, "delivered", "listening again")
    assert len(chat.wait_for(1, timeout=10)) == 1


def test_waiting_for_more_than_arrives_says_how_many_did(chat: HttpSink) -> None:
    with pytest.raises(TimeoutError, match=r"expected 1 requests within 0\.1 s, got 0"):
        chat.wait_for(1, timeout=0.1)


async def test_an_asyncio_test_waits_without_blocking_the_sender(
    mail: SmtpSink, chat: HttpSink
) -> None:
    notifier = apprise.Apprise()
    notifier.add(mailto(mail, "bob@example.com"))
    notifier.add(chat.url.replace("http://", "json://") + "/bob")

    # The waits run in threads, so the event loop stays free for the sends they wait on.
    waiting = asyncio.gather(
        asyncio.to_thread(mail.wait_for, 1, 10.0), asyncio.to_thread(chat.wait_for, 1, 10.0)
    )
    assert await notifier.async_notify(
        title="Both", body="one alert, two targets", body_format=apprise.NotifyFormat.TEXT
    )
    [email], [post] = await waiting

    assert (email.to, email.subject) == ("bob@example.com", "Both")
    assert (post.path, post.json["title"]) == ("/bob", "Both")
