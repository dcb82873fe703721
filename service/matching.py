"""Which subscriptions an event matches: the rules, and an index so that the cost of one event
does not grow with the number of subscriptions.

Rules (docs/matching.md has examples): every field a subscription sets must match, any value
within a field may. Employer and city values match a posting's employer or city when their
words are its words or its leading words; in an article they match a contiguous run of words
in the headline or body, or an entry of `companies` / `cities` by the posting rule. A title
value matches when all its words are in the posting's title (an article's headline). An
exclude phrase whose words are all in the title (headline) vetoes the match.

The rules are written out here, in Python, as `matches` and the plain `Scan`: the reference.
`Matcher`, what the service runs, holds the same rules in an index written in Rust (`native/`,
the `jobwire_native` module), because at a million subscriptions an event matches hundreds of
them and Python objects per match were the cost. Each subscription is filed under keys built
from its most selective fields (employer with city, else one of them with a title word, else
one field; a title alone by its word or its two longest words); an event computes the few keys
it could have and looks them up; most keys settle the rule on their own and the rest are
checked one by one; exclude phrases veto at the end. A hypothesis test holds the index to the
scan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from functools import lru_cache
from typing import NamedTuple

from jobwire_native import Index

from consumers.events import Event, JobPosting
from service.normalize import (
    CITY_WORDS,
    LEGAL_FORMS,
    Words,
    city_form,
    city_words,
    employer_words,
    general_words,
    phrase,
    words,
)
from service.subscriptions import Criteria

POSTING, ARTICLE = 1, 2
_KIND_BITS = {"posting": POSTING, "article": ARTICLE}


def _kind_bits(kinds: Iterable[str]) -> int:
    bits = 0
    for kind in kinds:
        bits |= _KIND_BITS[kind]
    return bits


def new_index() -> Index:
    """The Rust index, given the normalization rules it does not keep itself."""
    return Index(general_words, sorted(LEGAL_FORMS), list(CITY_WORDS.items()))


class Matcher:
    """All active subscriptions, indexed; `match(event)` returns the ids that want it."""

    def __init__(self) -> None:
        self._index = new_index()
        # The index knows subscriptions by slot; these map slots to ids and back.
        self._slots: dict[str, int] = {}
        self._ids: list[str] = []
        self._free: list[int] = []
        # Bumped when a slot is freed, so an answer read after that is refused, not misread.
        self._generation = 0

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, subscription_id: object) -> bool:
        return subscription_id in self._slots

    def add(self, subscription_id: str, criteria: Criteria) -> None:
        """Index a subscription, replacing one with the same id."""
        if subscription_id in self._slots:
            self.remove(subscription_id)
        slot = self._free[-1] if self._free else len(self._ids)
        self._index.add(
            slot,
            _kind_bits(criteria.kinds),
            criteria.employers,
            criteria.cities,
            criteria.titles,
            criteria.exclude,
        )
        if self._free:  # taken only once the index has it
            self._free.pop()
        if slot == len(self._ids):
            self._ids.append(subscription_id)
        else:
            self._ids[slot] = subscription_id
        self._slots[subscription_id] = slot

    def add_many(self, subscriptions: Iterable[tuple[str, Criteria]]) -> None:
        """Index many subscriptions at once, e.g. all of them at start-up."""
        for subscription_id, criteria in subscriptions:
            self.add(subscription_id, criteria)

    def remove(self, subscription_id: str) -> None:
        slot = self._slots.pop(subscription_id, None)
        if slot is None:
            return
        self._index.remove(slot)
        self._ids[slot] = ""
        self._free.append(slot)
        self._generation += 1

    def match(self, event: Event) -> Matches:
        """The ids of the subscriptions that want this event."""
        if isinstance(event, JobPosting):
            found = self._index.match_posting(event.employer, event.title, event.city)
        else:
            found = self._index.match_article(
                event.headline, event.body, event.companies, event.cities
            )
        return Matches(self, found)

    def index_stats(self) -> dict[str, int]:
        """What the index holds (subscriptions, keys, values, …): removal leaves nothing."""
        return self._index.stats()


class Matches(AbstractSet[str]):
    """The ids of the subscriptions an event matches. The index answers with slot numbers,
    packed; ids are looked up as they are read, so an event that matches hundreds of
    subscriptions costs no Python object per match until someone reads them. Read it before
    the matcher next loses a subscription (as a dict's view is read before the dict changes).
    """

    __slots__ = ("_generation", "_matcher", "_slots")

    def __init__(self, matcher: Matcher, found: bytes) -> None:
        self._matcher = matcher
        self._generation = matcher._generation
        self._slots = found  # native uint32, four bytes each

    def __len__(self) -> int:
        return len(self._slots) >> 2

    def __iter__(self) -> Iterator[str]:
        if self._generation != self._matcher._generation:
            raise RuntimeError("the matcher lost a subscription since this answer was given")
        return map(self._matcher._ids.__getitem__, memoryview(self._slots).cast("I"))

    def __contains__(self, subscription_id: object) -> bool:
        if not isinstance(subscription_id, str):
            return False
        slot = self._matcher._slots.get(subscription_id)
        return slot is not None and slot in memoryview(self._slots).cast("I")

    def __repr__(self) -> str:
        return f"Matches({sorted(self)!r})"


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
        _kind_bits(kinds),
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


def search_text(event: Event) -> str:
    """The distinct normalized words the rules can read in an event, as `" w1 w2 … "`.

    Stored with each recent event: every word of a value that matches must be among them, so
    `" word " in search_text` (a LIKE in SQL) narrows stored events to the few that could match
    a subscription before the matcher decides (see `candidate_words`).
    """
    found: set[str]
    if isinstance(event, JobPosting):
        found = {*employer_words(event.employer), *words(event.title), *city_words(event.city)}
    else:
        # Bodies are long and each is seen once: normalize them without filling the cache.
        headline, body = words(event.headline), words.__wrapped__(event.body)
        found = {*headline, *body, *city_form(headline), *city_form(body)}
        for company in event.companies:
            found.update(employer_words(company))
        for city in event.cities:
            found.update(city_words(city))
    return f" {' '.join(sorted(found))} "


def candidate_words(criteria: Criteria) -> list[list[str]]:
    """For each field the subscription sets, words of which a matching event's `search_text`
    has at least one: the longest word of each of the field's values."""
    groups = []
    for values, normalize in (
        (criteria.employers, employer_words),
        (criteria.cities, city_words),
        (criteria.titles, words),
    ):
        found = (normalize(value) for value in values)
        if group := sorted({max(w, key=len) for w in found if w}):
            groups.append(group)
    return groups
