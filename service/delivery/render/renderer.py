"""The render stage: events → the message a subscriber reads, through Jinja2 templates.

jobwire ships a template for each part of each message (service/delivery/render/templates/);
an operator replaces any of them by putting a file of the same name in
`JOBWIRE_TEMPLATES__DIR`. Every template renders in Jinja2's immutable sandbox, so a template
can print what it is given and nothing else (no `''.__class__`, no changing the lists it loops
over), with `StrictUndefined`, so a misspelt name fails instead of printing nothing. HTML
templates autoescape; Markdown templates escape every printed value the same way
(markdown.py); plain-text templates print values as they are.

A template that does not parse or render must stop start-up, never fail at send time:
`Renderer(...)` compiles every template and `check()` renders each with sample events (every
branch the defaults have: with and without optional fields, both kinds, a shortened digest),
raising one `TemplateError` that names the file and line of each problem.

Digests are the hot path (100,000 subscriptions × 20 matches at a digest hour): most matches
share events, so each event's entry is rendered once per format and kept (by kind and id),
and a digest only lays out entries it already has. See bench/bench_render.py.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
)
from jinja2 import (
    TemplateError as JinjaError,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from config.settings import TemplateSettings
from consumers.events import Event, JobPosting
from service.delivery.render import markdown
from service.delivery.render.message import Format, Message, Recipe
from service.delivery.render.samples import sample_renders
from service.delivery.render.views import ArticleView, PostingView, shorten_words, view

DEFAULTS = Path(__file__).with_name("templates")

FORMATS: tuple[Format, ...] = ("txt", "html", "md")

# Every template jobwire reads, by file name: an override directory holds any subset of these
# (and partials of its own whose names start with "_", for `{% include %}`).
INSTANT_KINDS = ("posting", "article")
TEMPLATE_NAMES: tuple[str, ...] = (
    *(f"instant_{kind}.{part}.j2" for kind in INSTANT_KINDS for part in ("title", *FORMATS)),
    *(f"digest.{part}.j2" for part in ("title", *FORMATS)),
    *(f"digest_{kind}.{fmt}.j2" for kind in INSTANT_KINDS for fmt in FORMATS),
)

# Entries kept of events seen in digests: about 1 KB each for the three formats.
ENTRY_CACHE = 50_000


class TemplateError(Exception):
    """Templates that cannot render alerts; each problem says `file:line: what`."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "templates that cannot render alerts: "
            + "; ".join(self.problems)
            + " (fix them in JOBWIRE_TEMPLATES__DIR, or remove them there to use jobwire's own)"
        )


# A digest entry: its place (newest first), then the event in each format.
Entry = tuple[float, str, Markup, markdown.MarkdownText]
_PICK = {fmt: operator.itemgetter(index) for index, fmt in enumerate(FORMATS, 1)}


class Renderer:
    """Renders instant alerts and digests from jobwire's templates and an operator's overrides.

    Made once at start (`Renderer.from_settings`); pure afterwards: no I/O, nothing global.
    """

    def __init__(self, templates_dir: Path | None = None, entry_cache: int = ENTRY_CACHE) -> None:
        loaders: list[BaseLoader] = [FileSystemLoader(DEFAULTS)]
        if templates_dir is not None:
            _refuse_unknown_files(templates_dir)
            loaders.insert(0, FileSystemLoader(templates_dir))
        loader = ChoiceLoader(loaders)
        text = _environment(loader)
        environments = {
            "title": text,
            "txt": text,
            "html": _environment(loader, autoescape=True),
            "md": _environment(loader, finalize=markdown.finalize),
        }
        environments["md"].filters["link"] = markdown.link
        self._templates: dict[str, Template] = {}
        problems = []
        for name in TEMPLATE_NAMES:
            part = name.split(".")[-2]
            try:
                self._templates[name] = environments[part].get_template(name)
            except TemplateSyntaxError as exc:
                problems.append(f"{exc.filename or name}:{exc.lineno}: {exc.message}")
        if problems:
            raise TemplateError(problems)
        # What every template sees besides its values (`range`, `namespace`, …): the same in
        # each environment, copied once (see `_run`).
        self._globals = dict(environments["txt"].globals)
        # Entries by event id, one dict per kind (ids are unique per kind).
        self._postings: dict[str, Entry] = {}
        self._articles: dict[str, Entry] = {}
        self._entry_cache = entry_cache

    @classmethod
    def from_settings(cls, settings: TemplateSettings) -> Renderer:
        """The renderer `jobwire run` uses, checked: raises TemplateError to stop start-up."""
        renderer = cls(settings.dir)
        renderer.check()
        return renderer

    def sources(self) -> dict[str, str]:
        """Which file each template is read from: the operator's, or jobwire's own."""
        return {name: str(template.filename) for name, template in self._templates.items()}

    # -- instant alerts --------------------------------------------------------------------

    def instant(
        self, event: Event, subscription_name: str = "", unsubscribe_url: str | None = None
    ) -> Message:
        """The alert for one event, sent the moment it matched."""
        seen = view(event)
        message = self._instant(seen, subscription_name, unsubscribe_url)
        message.recipe = ("instant", event, subscription_name, unsubscribe_url)
        return message

    def _instant(
        self, seen: PostingView | ArticleView, subscription_name: str, unsubscribe_url: str | None
    ) -> Message:
        context = {
            **self._globals,
            seen.kind: seen,
            "subscription_name": subscription_name,
            "unsubscribe_url": unsubscribe_url,
            "manage_url": None,  # the footer is shared with digests
        }
        name = f"instant_{seen.kind}"
        shorten = None
        shrinkable = 0
        if isinstance(seen, ArticleView) and seen.summary:
            shrinkable = len(seen.summary)
            shorten = functools.partial(
                self._shorter_summary, seen, subscription_name, unsubscribe_url
            )

        def render(fmt: Format) -> str:
            return self._render(f"{name}.{fmt}.j2", context)

        return Message(
            self._title(f"{name}.title.j2", context),
            unsubscribe_url=unsubscribe_url,
            shrinkable=shrinkable,
            shorten=shorten,
            render=render,
        )

    def _shorter_summary(
        self, seen: ArticleView, subscription_name: str, unsubscribe_url: str | None, chars: int
    ) -> Message:
        shorter = replace(seen, summary=shorten_words(seen.summary, chars))
        message = self._instant(shorter, subscription_name, unsubscribe_url)
        message.shrinkable = min(chars, len(shorter.summary))
        return message

    # -- digests ---------------------------------------------------------------------------

    def digest(
        self,
        subscription_name: str,
        events: Sequence[Event],
        unsubscribe_url: str | None = None,
        manage_url: str | None = None,
    ) -> Message:
        """One message with every match since the last one: postings, then articles, each
        newest first (by `published_at`; events without one after, in the order given)."""
        postings: list[Entry] = []
        articles: list[Entry] = []
        kept_posting, kept_article = self._postings.get, self._articles.get
        for event in events:
            if type(event) is JobPosting:  # not isinstance: pydantic's metaclass is an ABC's
                postings.append(kept_posting(event.id) or self._entry(event))
            else:
                articles.append(kept_article(event.id) or self._entry(event))
        if not postings and not articles:
            raise ValueError("a digest needs at least one event")
        postings.sort(key=_PUBLISHED)
        articles.sort(key=_PUBLISHED)
        layout = _Digest(
            subscription_name, postings + articles, len(postings), unsubscribe_url, manage_url
        )
        message = self._digest(layout, len(layout.entries))
        message.recipe = ("digest", subscription_name, events, unsubscribe_url, manage_url)
        return message

    def _digest(self, layout: _Digest, keep: int) -> Message:
        """The digest with its first `keep` entries and "…and N more" for the rest."""
        kept = layout.entries[:keep]
        kept_postings = min(keep, layout.posting_count)
        context: dict[str, Any] = {
            **self._globals,
            "subscription_name": layout.subscription_name,
            "posting_count": layout.posting_count,
            "article_count": layout.article_count,
            "counts": layout.counts,
            "more": len(layout.entries) - len(kept),
            "unsubscribe_url": layout.unsubscribe_url,
            "manage_url": layout.manage_url,
        }

        def render(fmt: Format) -> str:
            pick = _PICK[fmt]
            return self._render(
                f"digest.{fmt}.j2",
                {
                    **context,
                    "postings": Entries(map(pick, kept[:kept_postings])),
                    "articles": Entries(map(pick, kept[kept_postings:])),
                },
            )

        return Message(
            self._title("digest.title.j2", context),
            unsubscribe_url=layout.unsubscribe_url,
            shrinkable=keep,
            shorten=functools.partial(self._digest, layout),
            render=render,
        )

    def _entry(self, event: Event) -> Entry:
        """One event as a digest entry in every format, rendered once and kept."""
        kept = self._postings if isinstance(event, JobPosting) else self._articles
        entry = kept.get(event.id)
        if entry is not None:
            return entry
        seen = view(event)
        context = {**self._globals, seen.kind: seen}
        name = f"digest_{seen.kind}"
        entry = (
            _newest_first(event),
            self._render(f"{name}.txt.j2", context),
            Markup(self._render(f"{name}.html.j2", context)),
            markdown.MarkdownText(self._render(f"{name}.md.j2", context)),
        )
        if self._entry_cache:
            if len(kept) >= self._entry_cache:
                del kept[next(iter(kept))]  # the oldest first
            kept[event.id] = entry
        return entry

    # -- rendering and checking ------------------------------------------------------------

    def _render(self, name: str, context: dict[str, Any]) -> str:
        return self._run(name, context).strip()

    def _title(self, name: str, context: dict[str, Any]) -> str:
        # A title is one line wherever it goes (a subject, a chat heading).
        return " ".join(self._run(name, context).split())

    def _run(self, name: str, scope: dict[str, Any]) -> str:
        """`Template.render`, less what it costs per call that these templates do not need.

        `render` copies the template's globals out of a ChainMap into every context, twice
        (once for the values, once for their names, which only `{% import %}` of a template
        with other globals reads): 6 of the 10 µs a title takes. Here `scope` holds the
        globals already (copied once, at start) and becomes the context's values as it is; a
        template cannot change it (what it sets goes to the context's own variables). Errors
        are raised as `render` raises them, pointing at the template's line.
        """
        template = self._templates[name]
        environment = template.environment
        try:
            context = environment.context_class(environment, scope, name, template.blocks)
            return "".join(template.root_render_func(context))
        except Exception:
            environment.handle_exception()
            raise

    def check(self) -> None:
        """Render every template with sample events; TemplateError names each that fails.

        Called at start, so a broken override stops `jobwire run` instead of failing alerts.
        """
        problems: list[str] = []
        files = {str(template.filename) for template in self._templates.values()}
        try:
            for prefix, what, render in sample_renders(self):
                try:
                    message = render()
                    parts = (message.title, message.body, message.html, message.markdown)
                except Exception as exc:  # whatever a template raises, it is reported here
                    problem = _located(exc, files)
                    if problem not in problems:
                        problems.append(problem)
                    continue
                empty = _empty_parts(parts, prefix, what, self._templates)
                problems.extend(p for p in empty if p not in problems)
        finally:
            self._postings.clear()  # the samples' entries are no use to real digests
            self._articles.clear()
        if problems:
            raise TemplateError(problems)


class Entries(list[str]):
    """A digest's entries of one kind, in one format: a template loops over them, or prints
    them all at once, one a line (`{{ postings }}`: one escape check for the lot instead of
    one per entry, which is most of what an HTML digest costs)."""

    __slots__ = ()

    def __str__(self) -> str:
        return "\n".join(self)

    def __html__(self) -> str:
        return "\n".join(self)

    def __markdown__(self) -> str:
        return "\n".join(self)


class _Digest:
    """What a digest is made of, kept so it can be laid out again with fewer entries."""

    __slots__ = (
        "article_count",
        "counts",
        "entries",
        "manage_url",
        "posting_count",
        "subscription_name",
        "unsubscribe_url",
    )

    def __init__(
        self,
        subscription_name: str,
        entries: list[Entry],
        posting_count: int,
        unsubscribe_url: str | None,
        manage_url: str | None,
    ) -> None:
        self.subscription_name = subscription_name
        self.entries = entries
        self.posting_count = posting_count
        self.article_count = len(entries) - posting_count
        self.counts = counts(posting_count, self.article_count)
        self.unsubscribe_url = unsubscribe_url
        self.manage_url = manage_url


def counts(postings: int, articles: int) -> str:
    """'12 new postings and 1 article', '1 new posting', '3 new articles'."""
    if postings and articles:
        return f"{plural(postings, 'new posting')} and {plural(articles, 'article')}"
    if postings:
        return plural(postings, "new posting")
    return plural(articles, "new article")


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """'1 posting', '12 postings' (or the plural given)."""
    word = singular if count == 1 else (plural_form or f"{singular}s")
    return f"{count:,} {word}"


def date(value: datetime | None, fmt: str = "%Y-%m-%d") -> str:
    """A template filter: the date an event was published, or nothing when it has none."""
    return value.strftime(fmt) if value is not None else ""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_PUBLISHED = operator.itemgetter(0)  # an entry's place: newest first


def _newest_first(event: Event) -> float:
    published = event.published_at
    if published is None:
        return float("inf")
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return -(published - _EPOCH).total_seconds()


# The fields of the event views templates get (views.py): plain data, safe to read.
_VIEW_FIELDS = {cls: frozenset(f.name for f in fields(cls)) for cls in (PostingView, ArticleView)}


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with a short way to read a field of an event view.

    The sandbox checks every attribute a template reads (is it internal, a method that
    mutates, …): two thirds of the time it takes to render a digest entry. An event view is
    a frozen dataclass of plain values, so reading one of its fields needs no check; any other
    name, on a view or anything else, still goes through all of them.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        view_fields = _VIEW_FIELDS.get(type(obj))
        if view_fields is not None and attribute in view_fields:
            return object.__getattribute__(obj, attribute)
        return super().getattr(obj, attribute)


def _environment(
    loader: BaseLoader, autoescape: bool = False, finalize: Callable[[Any], Any] | None = None
) -> ImmutableSandboxedEnvironment:
    environment = _Sandbox(
        loader=loader,
        autoescape=autoescape,
        finalize=finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates are read once, at start
    )
    environment.filters["plural"] = plural
    environment.filters["date"] = date
    return environment


def _refuse_unknown_files(directory: Path) -> None:
    """A misspelt override would be ignored in silence: refuse it, naming what is read."""
    if not directory.is_dir():
        raise TemplateError([f"{directory}: not a directory"])
    unknown = sorted(
        path.name
        for path in directory.iterdir()
        if path.name.endswith(".j2")
        and not path.name.startswith("_")
        and path.name not in TEMPLATE_NAMES
    )
    if unknown:
        raise TemplateError(
            [
                f"{directory / name}:1: not a template jobwire reads (its names: "
                f"{', '.join(TEMPLATE_NAMES)}; partials for includes start with '_')"
                for name in unknown
            ]
        )


def _located(exc: BaseException, files: set[str]) -> str:
    """`file:line: what` for an error raised while rendering: the innermost template frame."""
    if isinstance(exc, TemplateSyntaxError):  # in a template included at render time
        return f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}"
    where = "a template"
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in files or filename.endswith(".j2"):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    what = str(exc) if isinstance(exc, JinjaError) else f"{type(exc).__name__}: {exc}"
    return f"{where}: {what}"


def _empty_parts(
    parts: tuple[str, str, str | None, str | None],
    prefix: str,
    what: str,
    templates: dict[str, Template],
) -> list[str]:
    return [
        f"{templates[f'{prefix}.{part}.j2'].filename}:1: renders nothing for {what}"
        for part, text in zip(("title", *FORMATS), parts, strict=True)
        if not text
    ]


def remake(renderer: Renderer, recipe: Recipe) -> Message:
    """The message `recipe` names, made again by `renderer` (in a sending process)."""
    kind, *args = recipe
    if kind == "instant":
        event, subscription_name, unsubscribe_url = args
        return renderer.instant(event, subscription_name, unsubscribe_url)
    subscription_name, events, unsubscribe_url, manage_url = args
    return renderer.digest(subscription_name, events, unsubscribe_url, manage_url)
