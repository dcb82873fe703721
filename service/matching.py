"""Which subscriptions an event matches: the rules, and an index so that the cost of one event
does not grow with the number of subscriptions.

Rules (docs/matching.md has examples): every field a subscription sets must match, any value
within a field may. Employer and city values match a posting's employer or city when their
words are its words or its leading words; in an article they match a contiguous run of words
in the headline or body, or an entry of `companies` / `cities` by the posting rule. A title
value matches when all its words are in the posting's title (an article's headline). An
exclude phrase whose words are all in the title (headline) vetoes the match.

The index files each subscription under keys built from its most selective fields (employer
and city together, else one of them with a title word, else one field). An event computes the
few keys it could satisfy, gathers those subscriptions and checks the full rule on each.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import product

from consumers.events import Event, JobPosting
from service.normalize import Words, city_form, city_words, employer_words, phrase, words
from service.subscriptions import Criteria

POSTING, ARTICLE = 1, 2
_KIND_BITS = {"posting": POSTING, "article": ARTICLE}
# Beyond this many value combinations a subscription is filed under one field instead.
_MAX_COMBINATIONS = 64

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A subscription's criteria, normalized once: what matching needs and nothing else."""

    kinds: int
    employers: tuple[Words, ...]
    cities: tuple[Words, ...]
    # Title and exclude values are sets of words: order does not matter, and a subset test
    # runs in C.
    titles: tuple[frozenset[str], ...]
    exclude: tuple[frozenset[str], ...]

    @classmethod
    def of(cls, criteria: Criteria) -> Compiled:
        def values(raw: Iterable[str], normalize: Callable[[str], Words]) -> tuple[Words, ...]:
            return tuple(dict.fromkeys(v for v in map(normalize, raw) if v))

        kinds = 0
        for kind in criteria.kinds:
            kinds |= _KIND_BITS[kind]
        return cls(
            kinds=kinds,
            employers=values(criteria.employers, employer_words),
            cities=values(criteria.cities, city_words),
            titles=tuple(frozenset(v) for v in values(criteria.titles, words)),
            exclude=tuple(frozenset(v) for v in values(criteria.exclude, words)),
        )

    def index_keys(self) -> list[tuple[Key, bool]]:
        """The index keys this subscription is filed under (none: it can never match), each
        with whether a posting that has the key is sure to match, with nothing to check."""
        employers = {" ".join(v): True for v in self.employers}
        cities = {" ".join(v): True for v in self.cities}
        # All words of a title value must be present, so its longest word is a fair key; the
        # key alone decides only for a one-word value.
        title_words: dict[str, bool] = {}
        for value in self.titles:
            word = max(sorted(value), key=len)
            title_words[word] = title_words.get(word, False) or len(value) == 1
        wanted = [(f, v) for f, v in (("e", employers), ("c", cities), ("t", title_words)) if v]
        if not wanted:
            return []
        fields = len(wanted)
        # Employer with city is selective enough; a title word only helps a single field.
        if len(wanted) == 3:
            wanted = wanted[:2]
        while len(wanted) > 1 and _combinations(wanted) > _MAX_COMBINATIONS:
            wanted.remove(max(wanted, key=lambda item: len(item[1])))
        shape = "".join(field for field, _ in wanted)
        settled = len(wanted) == fields and not self.exclude and bool(self.kinds & POSTING)
        return [
            ((shape, *(value for value, _ in combo)), settled and all(sure for _, sure in combo))
            for combo in product(*(values.items() for _, values in wanted))
        ]


def _combinations(wanted: list[tuple[str, dict[str, bool]]]) -> int:
    total = 1
    for _, values in wanted:
        total *= len(values)
    return total


@dataclass(frozen=True, slots=True)
class Features:
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
                kind=POSTING,
                employer=employer_words(event.employer),
                city=city_words(event.city),
                title=frozenset(words(event.title)),
                text="",
                city_text="",
                companies=(),
                cities=(),
            )
        headline, body = words(event.headline), words(event.body)
        return cls(
            kind=ARTICLE,
            employer=(),
            city=(),
            title=frozenset(headline),
            # A newline between the parts keeps a run from spanning headline and body.
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
    if compiled.exclude and any(ex <= title for ex in compiled.exclude):
        return False
    if compiled.titles and not any(v <= title for v in compiled.titles):
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


class Matcher:
    """All active subscriptions, indexed; `match(event)` returns the ids that want it."""

    def __init__(self) -> None:
        self._subscriptions: dict[str, Compiled] = {}
        # Per key: the subscriptions a posting with that key surely matches, and the ones
        # whose full rule must still be checked.
        self._index: dict[Key, tuple[list[str], list[str]]] = {}
        self._shapes: dict[str, int] = {}
        # For articles: the first word of every employer/city value in the index, so an
        # article only tests the values whose first word it contains.
        self._first_words: dict[str, dict[str, int]] = {"e": {}, "c": {}}
        # The longest employer/city value ever indexed, in words: the longest run to offer.
        self._longest = 1

    def __len__(self) -> int:
        return len(self._subscriptions)

    def __contains__(self, subscription_id: object) -> bool:
        return subscription_id in self._subscriptions

    def add(self, subscription_id: str, criteria: Criteria) -> None:
        """Index a subscription, replacing one with the same id."""
        self.remove(subscription_id)
        compiled = Compiled.of(criteria)
        self._subscriptions[subscription_id] = compiled
        for key, sure in compiled.index_keys():
            self._index.setdefault(key, ([], []))[0 if sure else 1].append(subscription_id)
            self._count(key, +1)

    def add_many(self, subscriptions: Iterable[tuple[str, Criteria]]) -> None:
        """Index many subscriptions at once, e.g. all of them at start-up.

        The cyclic garbage collector is paused meanwhile: a million small tuples would
        trigger it thousands of times, and index entries hold no cycles for it to find.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            for subscription_id, criteria in subscriptions:
                self.add(subscription_id, criteria)
        finally:
            if was_enabled:
                gc.enable()

    def remove(self, subscription_id: str) -> None:
        compiled = self._subscriptions.pop(subscription_id, None)
        if compiled is None:
            return
        for key, sure in compiled.index_keys():
            bucket = self._index[key]
            bucket[0 if sure else 1].remove(subscription_id)
            if not bucket[0] and not bucket[1]:
                del self._index[key]
            self._count(key, -1)

    def _count(self, key: Key, step: int) -> None:
        shape = key[0]
        self._shapes[shape] = self._shapes.get(shape, 0) + step
        if not self._shapes[shape]:
            del self._shapes[shape]
        for field, value in zip(shape, key[1:], strict=True):
            if field in self._first_words:
                firsts = self._first_words[field]
                first, *rest = value.split(" ")
                self._longest = max(self._longest, len(rest) + 1)
                firsts[first] = firsts.get(first, 0) + step
                if not firsts[first]:
                    del firsts[first]

    def match(self, event: Event) -> set[str]:
        """The ids of the subscriptions that want this event."""
        features = Features.of(event)
        found: set[str] = set()
        check: list[str] = []
        for key in self._keys(features):
            bucket = self._index.get(key)
            if bucket is not None:
                sure, unsure = bucket
                if features.kind == POSTING:
                    found.update(sure)
                else:
                    check.extend(sure)
                check.extend(unsure)
        subscriptions = self._subscriptions
        for subscription_id in check:
            if subscription_id not in found and matches(subscriptions[subscription_id], features):
                found.add(subscription_id)
        return found

    def scan(self, event: Event) -> set[str]:
        """The same answer as `match`, by checking every subscription: the baseline the
        index is measured and tested against."""
        features = Features.of(event)
        return {
            subscription_id
            for subscription_id, compiled in self._subscriptions.items()
            if matches(compiled, features)
        }

    def _keys(self, features: Features) -> Iterator[Key]:
        """The keys an event could satisfy, for the shapes that exist in the index."""
        if features.kind == POSTING:
            employers = [
                " ".join(features.employer[:n]) for n in range(1, len(features.employer) + 1)
            ]
            cities = [" ".join(features.city[:n]) for n in range(1, len(features.city) + 1)]
        else:
            employers = self._present("e", features.text, features.companies)
            cities = self._present("c", features.city_text, features.cities)
        options = {"e": employers, "c": cities, "t": list(features.title)}
        for shape in self._shapes:
            for combo in product(*(options[field] for field in shape)):
                yield (shape, *combo)

    def _present(self, field: str, text: str, entries: tuple[Words, ...]) -> list[str]:
        """Employer or city values an article could match: runs of its text that start with
        an indexed first word, and the leading words of its companies or cities entries."""
        firsts = self._first_words[field]
        found: set[str] = set()
        for entry in entries:
            found.update(" ".join(entry[:n]) for n in range(1, len(entry) + 1))
        tokens = text.split()
        for i, token in enumerate(tokens):
            if token in firsts:
                found.update(" ".join(tokens[i : i + n]) for n in range(1, self._longest + 1))
        return list(found)
