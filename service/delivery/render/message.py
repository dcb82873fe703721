"""A rendered alert or digest: one title and the body in every format a target may take."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Message:
    """What one alert or digest says.

    `body` is plain text; `html` and `markdown` are the same message for targets that show
    them (email takes the HTML, chat the Markdown; see service/delivery/fit.py). A message
    that can be made shorter says how far (`shrinkable` units: the entries of a digest, the
    characters of an article's summary) and `shorten(n)` gives it back keeping `n` of them,
    so fitting a service's limit drops whole entries instead of cutting text anywhere.
    """

    title: str
    body: str
    html: str | None = None
    markdown: str | None = None
    # Email targets carry it in List-Unsubscribe headers as well as in the body.
    unsubscribe_url: str | None = None
    shrinkable: int = 0
    shorten: Callable[[int], Message] | None = field(default=None, compare=False, repr=False)
