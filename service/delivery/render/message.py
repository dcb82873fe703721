"""A rendered alert or digest: one title and the body in every format a target may take."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

Format = Literal["txt", "html", "md"]
# ("instant", event, subscription name, unsubscribe URL) or
# ("digest", subscription name, events, unsubscribe URL, manage URL)
Recipe = tuple[Any, ...]


class Message:
    """What one alert or digest says.

    `body` is plain text; `html` and `markdown` are the same message for targets that show
    them (email takes the HTML, chat the Markdown; see service/delivery/send/fit.py). A message
    from the `Renderer` renders each body the first time it is read: a target takes one
    format, so a digest costs its title and that one body (bench/bench_render.py).

    A message that can be made shorter says how far (`shrinkable` units: the entries of a
    digest, the characters of an article's summary) and `shorten(n)` gives it back keeping
    `n` of them, so fitting a service's limit drops whole entries instead of cutting text.
    """

    __slots__ = (
        "_body",
        "_html",
        "_markdown",
        "_render",
        "recipe",
        "shorten",
        "shrinkable",
        "title",
        "unsubscribe_url",
    )

    def __init__(
        self,
        title: str,
        body: str | None = None,
        unsubscribe_url: str | None = None,
        *,
        html: str | None = None,
        markdown: str | None = None,
        shrinkable: int = 0,
        shorten: Callable[[int], Message] | None = None,
        render: Callable[[Format], str] | None = None,
        recipe: Recipe | None = None,
    ) -> None:
        if body is None and render is None:
            raise TypeError("a Message needs a body, or a way to render one")
        self.title = title
        self._body = body
        self._html = html
        self._markdown = markdown
        self._render = render
        # Email targets carry it in List-Unsubscribe headers as well as in the body.
        self.unsubscribe_url = unsubscribe_url
        self.shrinkable = shrinkable
        self.shorten = shorten
        # How the Renderer made it, so another process with the same templates can make it
        # again (service/delivery/send/senders.py): a message's lazy bodies do not travel.
        self.recipe = recipe

    @property
    def body(self) -> str:
        if self._body is None:
            assert self._render is not None
            self._body = self._render("txt")
        return self._body

    @property
    def html(self) -> str | None:
        if self._html is None and self._render is not None:
            self._html = self._render("html")
        return self._html

    @property
    def markdown(self) -> str | None:
        if self._markdown is None and self._render is not None:
            self._markdown = self._render("md")
        return self._markdown

    def _said(self) -> tuple[str, str, str | None, str | None, str | None]:
        return (self.title, self.body, self.html, self.markdown, self.unsubscribe_url)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self._said() == other._said()

    __hash__ = None  # type: ignore[assignment]  # equal by content, which renders lazily

    def __repr__(self) -> str:
        return f"Message(title={self.title!r}, body={self.body!r})"
