"""The matching rules, written out in Python: the reference the index is held to.

Rules (docs/matching.md has examples): every field a subscription sets must match, any value
within a field may. Employer and city values match a posting's employer or city when their
words are its words or its leading words; in an article they match a contiguous run of words
in the headline or body, or an entry of `companies` / `cities` by the posting rule. A title
value matches when all its words are in the posting's title (an article's headline). An
exclude phrase whose words are all in the title (headline) vetoes the match.

`matches` is the rule for one subscription and one event; `Scan` checks every subscription
with it, one by one: the baseline the index (index.py) is measured against, and what a
hypothesis test holds it to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

from consumers.events import Event, JobPosting
from service.matching.normalize import (
    Words,
    city_form,
    city_words,
    employer_words,
    phrase,
    words,
)

if TYPE_CHECKING:  # Criteria's validation reads normalize: no cycle at run time
    from service.subscriptions import Criteria

POSTING, ARTICLE = 1, 2
_KIND_BITS = {"posting": POSTING, "article": ARTICLE}


def kind_bits(kinds: Iterable[str]) -> int:
    bits = 0
    for kind in kinds:
        bits |= _KIND_BITS[kind]
    return bits


class Compiled(NamedTuple):
    """A subscription's criteria, normalized once: what the rules read and nothing else."""

    kinds: int
    employers: tuple[Words, ...]
    cities: tuple[Words, ...]
    # Title and exclude values as their distinct words: order does not matter.
    titles: tuple[frozenset[str], ...]
    exclude: tuple[frozenset[str], ...]

    @classmethod
    def of(cls, criteria: Criteria) -> Compiled:
        return _compiled(
            (
                tuple(criteria.employers),
                tuple(criteria.cities),
                tuple(criteria.titles),
                tuple(criteria.exclude),
                tuple(criteria.kinds),
            )
        )


@lru_cache(maxsize=1 << 16)
def _compiled(criteria: tuple[tuple[str, ...], ...]) -> Compiled:
    # Many people ask for the same thing: they share one compiled form.
    employers, cities, titles, exclude, kinds = criteria
    return Compiled(
        kind_bits(kinds),
        _values(employers, employer_words),
        _values(cities, city_words),
        tuple(frozenset(v) for v in _values(titles, words)),
        tuple(frozenset(v) for v in _values(exclude, words)),
    )


def _values(raw: tuple[str, ...], normalize: Callable[[str], Words]) -> tuple[Words, ...]:
    return tuple(dict.fromkeys(filter(None, map(normalize, raw))))


class Features(NamedTuple):
    """An event, normalized once, in the form the rules compare against."""

    kind: int
    employer: Words  # postings
    city: Words  # postings
    title: frozenset[str]  # a posting's title or an article's headline
    text: str  # articles: headline and body words, as one phrase per part
    city_text: str  # the same with city abbreviations spelled out
    companies: tuple[Words, ...]
    cities: tuple[Words, ...]

    @classmethod
    def of(cls, event: Event) -> Features:
        if isinstance(event, JobPosting):
            return cls(
                POSTING,
                employer_words(event.employer),
                city_words(event.city),
                frozenset(words(event.title)),
                "",
                "",
                (),
                (),
            )
        headline, body = words(event.headline), words(event.body)
        # A newline between the parts keeps a run from spanning headline and body.
        return cls(
            kind=ARTICLE,
            employer=(),
            city=(),
            title=frozenset(headline),
            text=phrase(headline) + "\n" + phrase(body),
            city_text=phrase(city_form(headline)) + "\n" + phrase(city_form(body)),
            companies=tuple(employer_words(c) for c in event.companies),
            cities=tuple(city_words(c) for c in event.cities),
        )


def _leads(value: Words, name: Words) -> bool:
    return name[: len(value)] == value


def matches(compiled: Compiled, event: Features) -> bool:
    """The full rule for one subscription and one event: the reference the index must agree
    with, and the whole of the plain scan."""
    if not compiled.kinds & event.kind:
        return False
    title = event.title
    if compiled.exclude and any(title.issuperset(ex) for ex in compiled.exclude):
        return False
    if compiled.titles and not any(title.issuperset(v) for v in compiled.titles):
        return False
    if event.kind == POSTING:
        if compiled.employers and not any(_leads(v, event.employer) for v in compiled.employers):
            return False
        return not compiled.cities or any(_leads(v, event.city) for v in compiled.cities)
    if compiled.employers and not any(
        phrase(v) in event.text or any(_leads(v, c) for c in event.companies)
        for v in compiled.employers
    ):
        return False
    return not compiled.cities or any(
        phrase(v) in event.city_text or any(_leads(v, c) for c in event.cities)
        for v in compiled.cities
    )


class Scan:
    """Every subscription checked by `matches`, one by one: the reference the index is tested
    against and the baseline it is measured against."""

    def __init__(self) -> None:
        self._subscriptions: dict[str, Compiled] = {}

    def add(self, subscription_id: str, criteria: Criteria) -> None:
        self._subscriptions[subscription_id] = Compiled.of(criteria)

    def remove(self, subscription_id: str) -> None:
        self._subscriptions.pop(subscription_id, None)

    def match(self, event: Event) -> set[str]:
        features = Features.of(event)
        return {
            subscription_id
            for subscription_id, compiled in self._subscriptions.items()
            if matches(compiled, features)
        }
