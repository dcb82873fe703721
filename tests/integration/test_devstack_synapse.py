"""A real Matrix homeserver receives what Apprise's matrix:// sends, read back as a room member.

These pin down what Apprise 2.2.0 puts into a Matrix room, which jobwire's alerts and digests
rely on: the title on top, Markdown turned into HTML, the ~64 KiB event limit.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import apprise
import pytest

from devstack.synapse import MatrixError, MatrixRoom, apprise_url, running_synapse

pytestmark = pytest.mark.integration

HTML = "org.matrix.custom.html"


def send(
    url: str, title: str, body: str, body_format: apprise.NotifyFormat = apprise.NotifyFormat.TEXT
) -> bool:
    """Whether Apprise reported success; callers assert on the result, never on this call,
    so that a failure does not print the URL and its password."""
    # A fresh Apprise object per send, as jobwire's notifier does: it logs in, joins, posts.
    notifier = apprise.Apprise()
    assert notifier.add(url), "Apprise rejected the matrix:// URL"
    return bool(notifier.notify(title=title, body=body, body_format=body_format))


def test_a_markdown_alert_arrives_in_the_room_as_html(matrix_room: MatrixRoom) -> None:
    body = (
        "**Asset Protection Agent** at _NORDSTROM_, Portland\n\n"
        "- [Apply](https://jobs.example.com/1)\n"
        "- Posted today"
    )

    sent = send(matrix_room.url(), "New job: Agent", body, apprise.NotifyFormat.MARKDOWN)

    assert sent

    [message] = matrix_room.wait_for_messages(1, timeout=10)
    assert message.sender == matrix_room.bot.user_id
    assert message.msgtype == "m.text"
    # Clients that show HTML see the title as a heading and the Markdown rendered.
    assert message.format == HTML
    assert message.formatted_body is not None
    assert message.formatted_body.startswith("<h1>New job: Agent</h1>")
    assert "<strong>Asset Protection Agent</strong> at <em>NORDSTROM</em>" in (
        message.formatted_body
    )
    assert '<a href="https://jobs.example.com/1">Apply</a>' in message.formatted_body
    # The plain fallback has the markup stripped, and with it the link's address.
    assert message.body.startswith("# New job: Agent\r\n")
    assert "Asset Protection Agent at NORDSTROM, Portland" in message.body
    assert "https://jobs.example.com/1" not in message.body
    # Apprise joined the room by accepting the invite.
    assert matrix_room.bot.user_id in matrix_room.reader.joined_members(matrix_room.room_id)


def test_a_text_alert_arrives_as_plain_text_with_the_title_on_top(matrix_room: MatrixRoom) -> None:
    body = "Asset Protection Agent at NORDSTROM, Portland\nLink: https://jobs.example.com/1"

    sent = send(matrix_room.url(), "New job: Agent", body)

    assert sent

    [message] = matrix_room.wait_for_messages(1, timeout=10)
    assert message.body == f"# New job: Agent\r\n{body}"
    assert message.format is None
    assert message.formatted_body is None


@pytest.mark.parametrize(
    ("by_alias", "token"),
    [(False, False), (True, False), (False, True)],
    ids=["room-id-and-password", "alias-and-password", "room-id-and-token"],
)
def test_each_url_form_posts_as_the_bot(
    matrix_room: MatrixRoom, by_alias: bool, token: bool
) -> None:
    url = matrix_room.url(by_alias=by_alias, token=token)

    sent = send(url, "Digest", "3 new jobs")

    assert sent

    [message] = matrix_room.wait_for_messages(1, timeout=10)
    assert (message.sender, message.body) == (matrix_room.bot.user_id, "# Digest\r\n3 new jobs")


def test_notice_messages_are_marked_as_from_a_bot(matrix_room: MatrixRoom) -> None:
    sent = send(matrix_room.url(msgtype="notice"), "Digest", "3 new jobs")
    assert sent

    [message] = matrix_room.wait_for_messages(1, timeout=10)
    assert message.msgtype == "m.notice"


def test_a_room_the_bot_was_not_invited_to_refuses_the_alert(matrix_room: MatrixRoom) -> None:
    private = matrix_room.reader.create_room()  # no invite for the bot

    sent = send(apprise_url(matrix_room.server, matrix_room.bot, private), "Digest", "3 new jobs")

    assert not sent
    assert matrix_room.reader.messages(private) == []


def test_a_misspelt_alias_is_reported_sent_into_a_room_only_the_bot_is_in(
    matrix_room: MatrixRoom,
) -> None:
    # Apprise creates a room for an alias that does not exist: nobody else will ever see it.
    typo = matrix_room.alias.replace("alerts-", "alrets-")

    sent = send(apprise_url(matrix_room.server, matrix_room.bot, typo), "Digest", "3 new jobs")

    assert sent
    bot = matrix_room.server.client(matrix_room.bot)
    assert bot.joined_members(bot.resolve_alias(typo)) == [matrix_room.bot.user_id]
    assert matrix_room.messages() == []


def digest(lines: int) -> str:
    # 57 characters a line: 1,500 lines are ~85 KB, more than one Matrix event holds (64 KiB).
    return "\n".join(
        f"{i:04d} Asset Protection Agent at NORDSTROM, Portland, Oregon" for i in range(lines)
    )


def test_a_digest_larger_than_one_event_is_refused_unless_split(matrix_room: MatrixRoom) -> None:
    body = digest(1500)

    # Apprise's default (overflow=upstream) sends it whole, and Synapse refuses it (413).
    sent_whole = send(matrix_room.url(), "Digest", body)
    assert not sent_whole
    assert matrix_room.messages() == []

    sent_split = send(matrix_room.url(overflow="split"), "Digest", body)
    assert sent_split

    parts = matrix_room.wait_for_messages(2, timeout=10)
    # Each part is titled with a counter, and the cut falls between two lines.
    titles, texts = zip(*(part.body.split("\r\n", 1) for part in parts), strict=True)
    assert titles == ("# Digest [1/2]", "# Digest [2/2]")
    assert "\n".join(texts).splitlines() == body.splitlines()


@pytest.mark.xfail(
    strict=True,
    reason="Apprise 2.2.0 with a token URL sends every chunk with one transaction id, and "
    "Synapse takes the repeats for retries: only the first chunk is posted, reported as sent",
)
def test_every_chunk_of_a_split_digest_arrives_with_a_token_url(matrix_room: MatrixRoom) -> None:
    body = digest(1500)

    sent = send(matrix_room.url(token=True, overflow="split"), "Digest", body)

    assert sent

    # Apprise returns once Synapse has answered each chunk: what is stored now is all there is.
    assert len(matrix_room.messages()) >= 2


def test_waiting_for_messages_wakes_on_arrival_and_times_out_naming_what_came(
    matrix_room: MatrixRoom,
) -> None:
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(matrix_room.wait_for_messages, 1, 30)
        matrix_room.reader.send_text(matrix_room.room_id, "hello")
        started = time.monotonic()
        [message] = waiting.result()
    assert message.body == "hello"
    assert time.monotonic() - started < 10  # woken by the arrival, not by the timeout

    with pytest.raises(TimeoutError, match=r"expected 2 messages .* got 1: \['hello'\]"):
        matrix_room.wait_for_messages(2, timeout=0.5)


def test_synapse_keeps_its_own_login_limits_when_asked() -> None:
    # A real server's limits: what a matrix://user:password@ URL meets when every alert logs in.
    with running_synapse(lift_rate_limits=False) as server:
        bot = server.register("jobwire-bot", "a password")
        for _ in range(5):
            server.login(bot.localpart, bot.password)
        with pytest.raises(MatrixError) as refused:
            server.login(bot.localpart, bot.password)
        assert (refused.value.status, refused.value.errcode) == (429, "M_LIMIT_EXCEEDED")
        workdir, process = server.workdir, server.process
    assert process.returncode == 0  # stopped gracefully
    assert not workdir.exists()


def test_the_session_server_lifts_them(matrix_room: MatrixRoom) -> None:
    bot = matrix_room.bot
    for _ in range(8):
        matrix_room.server.login(bot.localpart, bot.password)
