"""Each target gets the format its service shows, within the limits Apprise knows it has.

The plugins are Apprise 2.3.0's own objects, made from target URLs as the notifier makes them;
nothing is sent. What a real mail server, webhook and Matrix server receive is in
tests/integration/test_alert_formats.py.
"""

from __future__ import annotations

import re
from typing import Any

import apprise
import pytest
from apprise import NotifyFormat
from apprise.plugins import NotifyBase

from consumers.events import Article, JobPosting
from service.delivery.render import Message, Renderer
from service.delivery.send.fit import NotifyArgs, fit
from service.unsubscribe import with_unsubscribe_headers

UNSUBSCRIBE = "https://jobwire.example.com/unsubscribe/s1.bWFj"
MANAGE = "https://jobwire.example.com/subscriptions/s1"

TARGETS = {
    "email": "mailto://smtp.example.com:25?from=jobwire@example.com&to=ana@example.com",
    "slack": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#jobs",
    "discord": "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js",
    "telegram": "tgram://123456789:abcdefg_hijklmnop/12315544/",
    "matrix": "matrix://token@matrix.example.com/!room",
    "pushover": "pover://uu2kgh3j2ibmxx7kyqbsesm6rwnhrq@afyxgxyhs6qgxnt7i5nbv69xdrr45s",
    "rocketchat": "rocket://user:pass@chat.example.com/#jobs",
    "json": "json://hooks.example.com/jobs",
    "ntfy": "ntfy://ntfy.example.com/jobs",
    "gotify": "gotify://gotify.example.com/Aabcdefghijklm",
    "mattermost": "mmost://chat.example.com/3ccdd113474722377935511fc85d3dd4",
}


def plugin(url: str) -> Any:
    sender = apprise.Apprise()
    assert sender.add(url)
    return next(iter(sender))


def postings(count: int) -> list[JobPosting]:
    return [
        JobPosting(
            id=f"p{n}",
            employer="ROSS STORES",
            title=f"Loss Prevention Associate number {n}",
            city="Dallas",
            url=f"https://jobs.example.com/ross/{n}",
        )
        for n in range(count)
    ]


def delivered(target: Any, args: NotifyArgs) -> str:
    """The body as the service receives it: in its format, its dialect, with a folded title."""
    resolved = target.resolve_format(args.body_format)
    assert resolved == args.body_format, "fit() hands Apprise the format the service resolves"
    body = args.body
    if target.title_maxlen <= 0:
        body = f"{args.title}\r\n{body}"
    if type(target).dialect_convert is not NotifyBase.dialect_convert:
        body = target.dialect_convert(body, resolved)
    return str(body)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("email", NotifyFormat.HTML),
        ("slack", NotifyFormat.MARKDOWN),
        ("discord", NotifyFormat.MARKDOWN),
        ("telegram", NotifyFormat.MARKDOWN),
        ("matrix", NotifyFormat.MARKDOWN),
        ("pushover", NotifyFormat.MARKDOWN),
        ("json", NotifyFormat.MARKDOWN),
        ("ntfy", NotifyFormat.TEXT),
        ("gotify", NotifyFormat.TEXT),
        ("mattermost", NotifyFormat.TEXT),
    ],
)
def test_each_target_gets_the_richest_format_its_service_shows(
    name: str, expected: NotifyFormat
) -> None:
    message = Renderer().digest("ROSS STORES", postings(3), UNSUBSCRIBE, MANAGE)

    args = fit(message, plugin(TARGETS[name]))

    assert args.body_format == expected
    assert (
        args.body
        == {
            NotifyFormat.HTML: message.html,
            NotifyFormat.MARKDOWN: message.markdown,
            NotifyFormat.TEXT: message.body,
        }[expected]
    )
    assert args.title == "3 new postings for 'ROSS STORES'"


def test_a_format_the_user_put_in_the_target_url_wins() -> None:
    message = Renderer().instant(postings(1)[0])

    assert fit(message, plugin(TARGETS["json"] + "?format=text")).body == message.body
    assert fit(message, plugin(TARGETS["email"] + "&format=text")).body == message.body
    assert fit(message, plugin(TARGETS["matrix"] + "?format=html")).body == message.html


def test_a_message_with_text_only_goes_as_text_for_apprise_to_convert() -> None:
    message = Message("Digest", "3 new jobs\nhttps://jobs.example.com/1")

    for name in ("email", "slack", "telegram"):
        args = fit(message, plugin(TARGETS[name]))
        assert (args.body, args.body_format) == (message.body, NotifyFormat.TEXT)


def test_a_message_that_fits_is_sent_whole() -> None:
    message = Renderer().digest("ROSS STORES", postings(5), UNSUBSCRIBE, MANAGE)

    for name, url in TARGETS.items():
        args = fit(message, plugin(url))
        assert "…and" not in args.body, name
        assert re.findall(r"number (\d)", args.body) == ["0", "1", "2", "3", "4"], name


@pytest.mark.parametrize(
    "name", ["discord", "telegram", "pushover", "rocketchat", "ntfy", "mattermost", "slack", "json"]
)
def test_a_digest_too_long_for_the_service_keeps_whole_entries_and_counts_the_rest(
    name: str,
) -> None:
    target = plugin(TARGETS[name])
    message = Renderer().digest("ROSS STORES", postings(1500), UNSUBSCRIBE, MANAGE)

    args = fit(message, target)

    assert len(delivered(target, args)) <= target.body_maxlen
    kept = [int(n) for n in re.findall(r"Loss Prevention Associate number (\d+)", args.body)]
    assert kept == list(range(len(kept)))  # whole entries, in order, from the first
    assert kept, "at least one entry fits every one of these services"
    assert re.search(rf"…and {1500 - len(kept)} more: \[?{re.escape(MANAGE)}", args.body)
    assert UNSUBSCRIBE in args.body
    # As many as fit: one more entry would not.
    longer = fit(message.shorten(len(kept) + 1), target) if message.shorten else None
    assert longer is not None
    assert len(re.findall(r"number \d+", longer.body)) == len(kept)


def test_a_matrix_digest_fits_one_event_with_both_copies_of_its_body() -> None:
    target = plugin(TARGETS["matrix"])
    message = Renderer().digest("ROSS STORES", postings(1500), UNSUBSCRIBE, MANAGE)

    args = fit(message, target)

    html = target.dialect_convert(args.body, NotifyFormat.MARKDOWN)
    plain = apprise.conversion.html_to_text(html)
    # Synapse refuses an event over 64 KiB; the event carries the HTML and a plain copy.
    assert len(html.encode()) + len(plain.encode()) < 64 * 1024 - 1024
    assert re.search(r"…and \d+ more", args.body)
    assert 100 < len(re.findall(r"number \d+", args.body)) < 1500


def test_a_long_title_is_shortened_between_words() -> None:
    title = " ".join(["Loss Prevention Associate"] * 20)
    message = Renderer().instant(postings(1)[0].model_copy(update={"title": title}))

    args = fit(message, plugin(TARGETS["email"]))

    assert len(args.title) <= 250
    assert args.title.endswith("…")
    assert message.title.startswith(args.title[:-1])
    assert message.title[len(args.title) - 1] == " "


def test_a_long_article_alert_shortens_its_summary_between_words_and_keeps_its_links() -> None:
    words = " ".join(f"word{n}" for n in range(300))
    event = Article(id="a1", headline="Ross Stores", body=words, url="https://news.example.com/1")
    message = Renderer().instant(event, "Ross", UNSUBSCRIBE)
    target = plugin(TARGETS["pushover"])  # 1,024 characters

    args = fit(message, target)

    assert len(delivered(target, args)) <= target.body_maxlen
    summary = re.search(r"word0 .*?…", args.body)
    assert summary is not None
    assert words.startswith(summary.group(0)[:-1])
    assert words[len(summary.group(0)) - 1] == " "
    assert "https://news.example.com/1" in args.body
    assert UNSUBSCRIBE in args.body


def test_when_no_entry_fits_the_text_is_cut_between_words() -> None:
    target = plugin(TARGETS["gotify"])
    target.body_maxlen = 150  # a service this small is made up; the rule is not
    message = Renderer().digest("ROSS STORES", postings(3), UNSUBSCRIBE, MANAGE)

    args = fit(message, target)

    assert len(args.body) <= 150
    assert args.body.endswith("…")
    assert message.shorten is not None
    assert message.shorten(0).body.startswith(args.body[:-1])


def test_a_title_the_service_folds_into_a_markdown_body_is_escaped() -> None:
    event = postings(1)[0].model_copy(update={"title": "*URGENT* guard"})
    message = Renderer().instant(event)

    args = fit(message, plugin(TARGETS["telegram"]))  # no title field: it heads the body

    assert args.title.startswith(r"New job: \*URGENT\* guard")


def test_email_targets_carry_the_unsubscribe_link_in_list_unsubscribe_headers() -> None:
    url = with_unsubscribe_headers(TARGETS["email"] + "&%2BList-Unsubscribe=evil", UNSUBSCRIBE)

    headers = plugin(url).headers

    assert headers["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert with_unsubscribe_headers(TARGETS["json"], UNSUBSCRIBE) == TARGETS["json"]


@pytest.mark.parametrize(("name", "body"), [("email", "html"), ("slack", "md"), ("ntfy", "txt")])
def test_only_the_body_a_target_takes_is_rendered(name: str, body: str) -> None:
    rendered: list[str] = []

    def render(fmt: str) -> str:
        rendered.append(fmt)
        return {"txt": "3 new jobs", "html": "<p>3 new jobs</p>", "md": "**3** new jobs"}[fmt]

    fit(Message("Digest", render=render), plugin(TARGETS[name]))

    assert rendered == [body]


def test_a_title_cut_to_plain_text_is_not_left_escaped_for_markdown() -> None:
    event = postings(1)[0].model_copy(update={"title": "*URGENT* guard"})
    target = plugin(TARGETS["telegram"])  # no title field: it heads the body
    target.body_maxlen = 60  # so small that only the last resort, plain text, fits
    message = Renderer().instant(event)

    args = fit(message, target)

    assert args.body_format == NotifyFormat.TEXT
    assert args.title.startswith("New job: *URGENT* guard")  # as written, no backslashes
