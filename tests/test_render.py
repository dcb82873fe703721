"""What an alert and a digest say, from jobwire's templates or an operator's."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from apprise import NotifyFormat
from apprise.conversion import convert_between

from config.settings import TemplateSettings
from consumers.events import AnyEvent, Article, Event, JobPosting
from service.delivery import render_test
from service.delivery.render import TEMPLATE_NAMES, Renderer, TemplateError, check_templates

UNSUBSCRIBE = "https://jobwire.example.com/unsubscribe/s1.bWFj"
MANAGE = "https://jobwire.example.com/subscriptions/s1"


def posting(n: int, hour: int | None = 9, **fields: str) -> JobPosting:
    return JobPosting(
        id=f"p{n}",
        employer=fields.get("employer", "ROSS STORES"),
        title=fields.get("title", f"Loss Prevention Associate {n}"),
        city=fields.get("city", "Dallas"),
        url=fields.get("url", f"https://jobs.example.com/ross/{n}"),
        published_at=None if hour is None else datetime(2020, 10, 8, hour, n % 60, tzinfo=UTC),
    )


def article(n: int, hour: int | None = 9, **fields: str) -> Article:
    return Article(
        id=f"a{n}",
        headline=fields.get("headline", f"Ross Stores news {n}"),
        byline="Reuters API",
        body=fields.get("body", "First paragraph.\nSecond."),
        url=f"https://news.example.com/{n}",
        published_at=None if hour is None else datetime(2020, 10, 8, hour, n % 60, tzinfo=UTC),
    )


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


# -- instant alerts ----------------------------------------------------------------------


def test_a_posting_alert_names_employer_title_city_and_link() -> None:
    event = JobPosting(
        id="p",
        employer="NORDSTROM",
        title="Asset Protection Agent",
        city="Portland",
        url="https://jobs.example.com/p",
    )
    message = Renderer().instant(event, "Nordstrom in Portland", "https://jobwire.example.com/u/t")
    assert message.title == "New job: Asset Protection Agent at NORDSTROM, Portland"
    for part in ("NORDSTROM", "Asset Protection Agent", "Portland", "https://jobs.example.com/p"):
        assert part in message.body
    assert "Unsubscribe: https://jobwire.example.com/u/t" in message.body


def test_an_article_alert_names_headline_byline_and_first_paragraph() -> None:
    message = Renderer().instant(article(1))
    assert message.title == "News: Ross Stores news 1"
    assert "By Reuters API" in message.body
    assert "https://news.example.com/1" in message.body
    assert "First paragraph." in message.body
    assert "Second." not in message.body


def test_every_format_links_the_posting_and_the_unsubscribe_page() -> None:
    message = Renderer().instant(posting(1), "Ross", UNSUBSCRIBE)

    assert message.html is not None
    assert message.markdown is not None
    assert '<a href="https://jobs.example.com/ross/1">' in message.html
    assert f'<a href="{UNSUBSCRIBE}">' in message.html
    assert "](https://jobs.example.com/ross/1)" in message.markdown
    assert f"[Unsubscribe]({UNSUBSCRIBE})" in message.markdown
    assert f"Unsubscribe: {UNSUBSCRIBE}" in message.body


def test_what_an_event_says_is_escaped_in_html_and_markdown_and_kept_in_text() -> None:
    said = "*URGENT* <b>Guard</b> & [apply](https://evil.example.com)"
    message = Renderer().instant(posting(1, title=said))

    assert said in message.body
    assert message.html is not None
    assert message.markdown is not None
    assert "&lt;b&gt;Guard&lt;/b&gt; &amp; [apply](https://evil.example.com)" in message.html
    assert "<b>" not in message.html
    assert r"\*URGENT\* &lt;b&gt;Guard&lt;/b&gt; & \[apply\](https://evil.example.com)" in (
        message.markdown
    )
    assert not re.search(r"(?<!\\)\]\(https://evil", message.markdown)  # no link made


def test_a_link_that_is_not_http_is_never_made_clickable() -> None:
    message = Renderer().instant(posting(1, url="javascript:alert(1)"))

    assert message.html is not None
    assert message.markdown is not None
    for said in (message.body, message.html, message.markdown):
        assert "javascript" not in said


def test_an_article_summary_is_its_first_paragraph_cut_between_words() -> None:
    words = " ".join(f"word{n}" for n in range(200))
    message = Renderer().instant(article(1, body=words + "\nSecond paragraph."))

    summary = next(line for line in message.body.splitlines() if line.startswith("word0 "))
    assert len(summary) <= 400
    assert summary.endswith("…")
    assert words.startswith(summary[:-1])
    assert words[len(summary) - 1] == " "  # the cut fell between two words


# -- digests -------------------------------------------------------------------------------


def test_a_digest_lists_postings_then_articles_each_newest_first() -> None:
    events: list[Event] = [
        article(1, 8),
        posting(1, 8),
        posting(2, 11),
        article(2, 10),
        posting(3, 9),
    ]

    message = Renderer().digest("ROSS STORES", events, UNSUBSCRIBE, MANAGE)

    order = [m.group(0) for m in re.finditer(r"(Loss Prevention Associate|news) \d", message.body)]
    assert order == [
        "Loss Prevention Associate 2",
        "Loss Prevention Associate 3",
        "Loss Prevention Associate 1",
        "news 2",
        "news 1",
    ]
    assert message.body.index("Postings") < message.body.index("Articles")


def test_events_without_a_date_come_after_the_dated_ones_in_the_order_given() -> None:
    events: list[Event] = [posting(1, None), posting(2, 9), posting(3, None), posting(4, 10)]

    body = Renderer().digest("", events).body

    order = re.findall(r"Associate (\d)", body)
    assert order == ["4", "2", "1", "3"]


@pytest.mark.parametrize(
    ("postings", "articles", "title"),
    [
        (12, 1, "12 new postings and 1 article for 'ROSS STORES'"),
        (1, 0, "1 new posting for 'ROSS STORES'"),
        (0, 3, "3 new articles for 'ROSS STORES'"),
        (1, 2, "1 new posting and 2 articles for 'ROSS STORES'"),
    ],
)
def test_a_digest_title_counts_what_it_holds(postings: int, articles: int, title: str) -> None:
    events: list[Event] = [posting(n) for n in range(postings)]
    events += [article(n) for n in range(articles)]

    assert Renderer().digest("ROSS STORES", events).title == title


def test_every_format_of_a_digest_links_each_entry_and_the_unsubscribe_page() -> None:
    events = [posting(n) for n in range(5)]

    message = Renderer().digest("ROSS STORES", events, UNSUBSCRIBE, MANAGE)

    assert message.html is not None
    assert message.markdown is not None
    for n in range(5):
        url = f"https://jobs.example.com/ross/{n}"
        assert url in message.body
        assert f'<a href="{url}">' in message.html
        assert f"]({url})" in message.markdown
    assert f"Unsubscribe: {UNSUBSCRIBE}" in message.body
    assert f'<a href="{UNSUBSCRIBE}">' in message.html
    assert f"[Unsubscribe]({UNSUBSCRIBE})" in message.markdown


def test_a_shortened_digest_keeps_whole_entries_and_says_how_many_more() -> None:
    events: list[Event] = [posting(n, 9) for n in range(5)] + [article(1)]
    digest = Renderer().digest("ROSS STORES", events, UNSUBSCRIBE, MANAGE)
    assert digest.shorten is not None
    assert digest.shrinkable == 6

    shorter = digest.shorten(2)

    assert shorter.title == digest.title  # still counts every match
    assert re.findall(r"Associate (\d)", shorter.body) == ["4", "3"]
    assert "Articles" not in shorter.body
    assert f"…and 4 more: {MANAGE}" in shorter.body
    assert shorter.markdown is not None
    assert f"…and 4 more: [{MANAGE}]({MANAGE})" in shorter.markdown
    assert shorter.html is not None
    assert f'…and 4 more: <a href="{MANAGE}">' in shorter.html


def test_without_a_manage_link_the_rest_is_counted_without_one() -> None:
    digest = Renderer().digest("ROSS STORES", [posting(n) for n in range(3)], UNSUBSCRIBE)
    assert digest.shorten is not None

    shorter = digest.shorten(1)

    assert re.search(r"^…and 2 more$", shorter.body, re.MULTILINE)


def test_a_digest_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        Renderer().digest("ROSS STORES", [])


# -- the sandbox, overrides and the start-up check ----------------------------------------


def test_the_default_templates_pass_the_start_up_check() -> None:
    Renderer.from_settings(TemplateSettings())


@pytest.mark.parametrize(
    "reach",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ posting.__class__ }}",
        "{{ posting.__init__.__globals__ }}",
        "{{ counts.__class__.__subclasses__() }}",
    ],
)
def test_the_sandbox_refuses_a_template_that_reaches_for_python_internals(
    tmp_path: Path, reach: str
) -> None:
    name = "digest.title.j2" if "counts" in reach else "instant_posting.title.j2"
    path = write(tmp_path, name, f"New job\n{reach}\n")

    with pytest.raises(TemplateError) as refused:
        Renderer.from_settings(TemplateSettings(dir=tmp_path))

    assert f"{path}:2: access to attribute '__" in str(refused.value)
    assert "is unsafe" in str(refused.value)


def test_the_sandbox_refuses_a_template_that_changes_what_it_is_given(tmp_path: Path) -> None:
    path = write(tmp_path, "digest.txt.j2", "{{ postings }}\n{{ postings.append('spam') }}\n")

    with pytest.raises(TemplateError, match=re.escape(f"{path}:2: ")):
        Renderer.from_settings(TemplateSettings(dir=tmp_path))


def test_an_override_replaces_its_template_and_no_other(tmp_path: Path) -> None:
    path = write(tmp_path, "instant_posting.title.j2", "Hiring: {{ posting.employer | lower }}")
    default = Renderer().instant(posting(1), "Ross", UNSUBSCRIBE)

    renderer = Renderer.from_settings(TemplateSettings(dir=tmp_path))
    message = renderer.instant(posting(1), "Ross", UNSUBSCRIBE)

    assert message.title == "Hiring: ross stores"
    assert (message.body, message.html, message.markdown) == (
        default.body,
        default.html,
        default.markdown,
    )
    assert renderer.sources()["instant_posting.title.j2"] == str(path)
    assert not renderer.sources()["instant_posting.txt.j2"].startswith(str(tmp_path))


def test_an_override_may_include_partials_of_its_own(tmp_path: Path) -> None:
    write(tmp_path, "_sign.txt.j2", "-- the jobs desk")
    write(tmp_path, "digest.txt.j2", '{{ postings }}\n{% include "_sign.txt.j2" %}\n')

    renderer = Renderer.from_settings(TemplateSettings(dir=tmp_path))

    assert renderer.digest("", [posting(1)]).body.endswith("-- the jobs desk")


def test_html_overrides_autoescape_and_text_overrides_do_not(tmp_path: Path) -> None:
    write(tmp_path, "instant_posting.html.j2", "<p>{{ posting.title }}</p>")
    write(tmp_path, "instant_posting.txt.j2", "{{ posting.title }}")

    message = Renderer(tmp_path).instant(posting(1, title="Guard <b>&</b>"))

    assert message.html == "<p>Guard &lt;b&gt;&amp;&lt;/b&gt;</p>"
    assert message.body == "Guard <b>&</b>"


def test_a_template_that_does_not_parse_stops_start_up_naming_file_and_line(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "digest.html.j2", "<ul>\n{{ postings }}\n{% if more %}\n</ul>\n")

    with pytest.raises(TemplateError) as refused:
        Renderer.from_settings(TemplateSettings(dir=tmp_path))

    assert str(refused.value).startswith(f"templates that cannot render alerts: {path}:4: ")
    assert "endif" in str(refused.value)


def test_a_misspelt_name_stops_start_up_naming_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "instant_article.txt.j2", "{{ article.headline }}\n\n{{ article.sumary }}\n"
    )

    with pytest.raises(TemplateError) as refused:
        Renderer.from_settings(TemplateSettings(dir=tmp_path))

    assert f"{path}:3: " in str(refused.value)
    assert "sumary" in str(refused.value)


def test_a_template_that_fails_only_for_some_events_is_caught_at_start(tmp_path: Path) -> None:
    # The samples include a posting without a contract, so this fails at start, not at send.
    path = write(
        tmp_path, "instant_posting.txt.j2", "{{ posting.title }}\n{{ posting.contract.upper() }}"
    )

    with pytest.raises(TemplateError, match=re.escape(f"{path}:2: ")):
        Renderer.from_settings(TemplateSettings(dir=tmp_path))


def test_a_template_that_renders_nothing_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "digest.md.j2", "{# nothing #}\n")

    with pytest.raises(TemplateError, match=re.escape(f"{path}:1: renders nothing")):
        Renderer.from_settings(TemplateSettings(dir=tmp_path))


def test_every_broken_template_is_named_at_once(tmp_path: Path) -> None:
    first = write(tmp_path, "digest.title.j2", "{{ cuonts }}")
    second = write(tmp_path, "instant_posting.md.j2", "{% for %}")

    with pytest.raises(TemplateError) as refused:
        Renderer.from_settings(TemplateSettings(dir=tmp_path))

    # A template that does not parse is found first, before any renders.
    assert [p.split(": ")[0] for p in refused.value.problems] == [f"{second}:1"]
    write(tmp_path, "instant_posting.md.j2", "{{ posting.title }}")
    write(tmp_path, "digest_posting.txt.j2", "{{ posting.employr }}")
    with pytest.raises(TemplateError) as refused:
        Renderer.from_settings(TemplateSettings(dir=tmp_path))
    assert {p.split(": ")[0] for p in refused.value.problems} == {
        f"{first}:1",
        f"{tmp_path / 'digest_posting.txt.j2'}:1",
    }


def test_a_misspelt_file_name_in_the_override_directory_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "digest.text.j2", "{{ postings }}")
    write(tmp_path, "README.md", "not a template: ignored")

    with pytest.raises(TemplateError, match=r"digest\.text\.j2:1: not a template jobwire reads"):
        Renderer(tmp_path)


def test_every_template_name_is_a_default_file() -> None:
    renderer = Renderer()
    assert set(renderer.sources()) == set(TEMPLATE_NAMES)
    assert all(Path(source).is_file() for source in renderer.sources().values())


def test_the_check_command_names_each_file_it_reads(tmp_path: Path) -> None:
    path = write(tmp_path, "digest.title.j2", "{{ counts }}")

    said = check_templates(TemplateSettings(dir=tmp_path))

    assert f"digest.title.j2: {path}" in said
    assert said.count("\n") == len(TEMPLATE_NAMES)


def test_the_test_alert_says_which_subscription_in_every_format() -> None:
    message = render_test("AP jobs", UNSUBSCRIBE)

    assert message.title == "jobwire test alert"
    assert "subscription 'AP jobs'" in message.body
    assert message.html is not None
    assert message.markdown is not None
    assert f'<a href="{UNSUBSCRIBE}">' in message.html
    assert f"[Unsubscribe]({UNSUBSCRIBE})" in message.markdown
    assert message.unsubscribe_url == UNSUBSCRIBE


def test_the_readme_shows_alerts_as_jobwire_renders_them() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    section = readme[readme.index("## What an alert says") : readme.index("### Templates")]
    alert_block, digest_block = re.findall(r"```text\n(.*?)```", section, re.DOTALL)
    samples = (root / "devstack" / "samples" / "events.jsonl").read_text().splitlines()
    events = [AnyEvent.validate_json(line) for line in samples]
    unsubscribe = "http://127.0.0.1:8080/unsubscribe/3f9c2a.Qk1hY3Vz"
    renderer = Renderer()

    alert = renderer.instant(
        next(e for e in events if e.id == "fj-2020-10-08-004"), "Nordstrom in Portland", unsubscribe
    )
    macys = [e for e in events if isinstance(e, JobPosting) and e.employer == "MACY'S"]
    news = [e for e in events if isinstance(e, Article)]
    digest = renderer.digest("MACY'S", [*macys, *news], unsubscribe)

    assert alert_block == f"{alert.title}\n\n{alert.body}\n"
    assert digest_block == f"{digest.title}\n\n{digest.body}\n"


def test_the_text_part_apprise_makes_from_the_html_has_no_line_starting_with_a_space() -> None:
    # Email's text part is Apprise's conversion of the HTML part: a footer laid out with
    # indentation used to leave " Unsubscribe: …" in it.
    renderer = Renderer()
    messages = [
        renderer.instant(posting(1), "Ross in Dallas", UNSUBSCRIBE),
        renderer.instant(article(1), "News", UNSUBSCRIBE),
        renderer.digest("Ross", [posting(1), posting(2), article(3)], UNSUBSCRIBE, MANAGE),
    ]
    for message in messages:
        assert message.html is not None
        text = convert_between(NotifyFormat.HTML, NotifyFormat.TEXT, message.html)
        assert "Unsubscribe" in text
        assert [line for line in text.splitlines() if line.startswith(" ")] == []
