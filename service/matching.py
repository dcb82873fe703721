"""Which subscriptions an event matches: the rules, and an index so that the cost of one event
does not grow with the number of subscriptions.

Rules (docs/matching.md has examples): every field a subscription sets must match, any value
within a field may. Employer and city values match a posting's employer or city when their
words are its words or its leading words; in an article they match a contiguous run of words
in the headline or body, or an entry of `companies` / `cities` by the posting rule. A title
value matches when all its words are in the posting's title (an article's headline). An
exclude phrase whose words are all in the title (headline) vetoes the match.

The index files each subscription under keys built from its most selective fields (employer
with city, else one of them with a title word, else one field; a title alone by its word or
its pair of longest words). An event computes the few keys it could satisfy and looks them up.
Most keys settle the rule on their own, so their subscriptions are taken as a whole, in C; the
rest are checked one by one. Exclude phrases are indexed apart, by word, and veto at the end.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from itertools import product
from typing import NamedTuple

from consumers.events import Event, JobPosting
from service.normalize import (
    Words,
    city_form,
    city_words,
    employer_words,
    phrase,
    words,
)
from service.subscriptions import Criteria

POSTING, ARTICLE = 1, 2
_KIND_BITS = {"posting": POSTING, "article": ARTICLE}
# Beyond this many value combinations a subscription is filed under one field instead.
_MAX_COMBINATIONS = 64

# An index key's place: its shape, its first value and its second (None for one-value shapes),
# and whether an event that has the key is sure to match, excludes aside (they veto apart).
# Shapes: "e" employer, "c" city, "t" a title word, "p" two title words (in sorted order), and
# the pairs "ec", "et", "ct". Employer and city values are their words joined by spaces.
Place = tuple[str, str, str | None, bool]
_SINGLE_SHAPES = ("e", "c", "t")
_NESTED_SHAPES = ("p", "ec", "et", "ct")


class Compiled(NamedTuple):
    """A subscription's criteria, normalized once: what matching needs and nothing else."""

    kinds: int
    employers: tuple[Words, ...]
    cities: tuple[Words, ...]
    # Title and exclude values are their distinct words: order does not matter, and a subset
    # test against the event's set of words runs in C.
    titles: tuple[Words, ...]
    exclude: tuple[Words, ...]
    # Where the index files it (none: it can never match).
    places: tuple[Place, ...]

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
    """Compiled criteria, kept for a while: many people ask for the same thing, and they then
    share one."""
    employers, cities, titles, exclude, kinds = criteria
    bits = 0
    for kind in kinds:
        bits |= _KIND_BITS[kind]
    employer_values = _values(employers, employer_words)
    city_values = _values(cities, city_words)
    title_values = _word_sets(titles)
    return Compiled(
        bits,
        employer_values,
        city_values,
        title_values,
        _word_sets(exclude),
        _places(employer_values, city_values, title_values),
    )


def _values(raw: tuple[str, ...], normalize: Callable[[str], Words]) -> tuple[Words, ...]:
    # Most fields hold no value or one: they skip the general case.
    if len(raw) == 1:
        value = normalize(raw[0])
        return (value,) if value else ()
    return tuple(dict.fromkeys(filter(None, map(normalize, raw))))


def _word_sets(raw: tuple[str, ...]) -> tuple[Words, ...]:
    found = _values(raw, words)
    if len(found) == 1:
        return (_distinct(found[0]),)
    return tuple(dict.fromkeys(map(_distinct, found)))


def _distinct(value: Words) -> Words:
    return value if len(value) == 1 else tuple(sorted(set(value)))


def _places(
    employer_values: tuple[Words, ...],
    city_values: tuple[Words, ...],
    titles: tuple[Words, ...],
) -> tuple[Place, ...]:
    """Each subscription is filed under its most selective fields: employer with city, else
    one of them with a word of each title value, else one field; a title alone by its word,
    or its two longest words. One place per combination of values."""
    # Equal values share one string: a million subscriptions name a few thousand employers.
    employers = [sys.intern(" ".join(v)) for v in employer_values]
    cities = [sys.intern(" ".join(v)) for v in city_values]
    # All words of a title value must be present, so its longest words make a fair key; the
    # key alone decides when it holds every word of the value.
    if not (employers or cities):
        return tuple(dict.fromkeys(_title_place(value) for value in titles))
    if employers and cities:
        if len(employers) * len(cities) <= _MAX_COMBINATIONS:
            # Employer with city is selective enough; a title is left to the check.
            return tuple(("ec", e, c, not titles) for e, c in product(employers, cities))
    elif titles:
        field, values = ("e", employers) if employers else ("c", cities)
        if len(values) * len(titles) <= _MAX_COMBINATIONS:
            return tuple(
                dict.fromkeys(
                    (field + "t", v, _longest(title), len(title) == 1)
                    for v, title in product(values, titles)
                )
            )
    # Too many combinations, or one field alone: the field with fewer values.
    fields = [(f, v) for f, v in (("e", employers), ("c", cities)) if v]
    field, values = min(fields, key=lambda item: len(item[1]))
    sure = len(fields) == 1 and not titles
    return tuple((field, v, None, sure) for v in values)


def _by_length(word: str) -> tuple[int, str]:
    return -len(word), word


def _longest(value: Words) -> str:
    return min(value, key=_by_length)


def _title_place(value: Words) -> Place:
    if len(value) == 1:
        return ("t", value[0], None, True)
    first, second = sorted(sorted(value, key=_by_length)[:2])
    return ("p", first, second, len(value) == 2)


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
    # Articles: the distinct words of `text` and of `city_text`.
    vocabulary: frozenset[str] = frozenset()
    city_vocabulary: frozenset[str] = frozenset()

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
        text = phrase(headline) + "\n" + phrase(body)
        vocabulary = frozenset((*headline, *body))
        city_headline, city_body = city_form(headline), city_form(body)
        if city_headline is headline and city_body is body:  # no abbreviation to spell out
            city_text, city_vocabulary = text, vocabulary
        else:
            city_text = phrase(city_headline) + "\n" + phrase(city_body)
            city_vocabulary = frozenset((*city_headline, *city_body))
        return cls(
            kind=ARTICLE,
            employer=(),
            city=(),
            title=frozenset(headline),
            text=text,
            city_text=city_text,
            companies=tuple(employer_words(c) for c in event.companies),
            cities=tuple(city_words(c) for c in event.cities),
            vocabulary=vocabulary,
            city_vocabulary=city_vocabulary,
        )


def _leads(value: Words, name: Words) -> bool:
    return name[: len(value)] == value


@lru_cache(maxsize=65536)
def _leading_runs(name: Words) -> tuple[str, ...]:
    """Every value that leads a name: `ross store` -> `ross`, `ross store`."""
    return tuple(" ".join(name[:n]) for n in range(1, len(name) + 1))


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


# A bucket holds the ids filed under one key: [sure to match, to be checked]. Few ids are
# kept in a tuple, more in a set: merging a set into the result copies its stored hashes
# without visiting each id, and at a million subscriptions visiting them is the cost.
Ids = tuple[str, ...] | set[str]
Bucket = list[Ids]
_SURE, _CHECK = 0, 1
_SMALL = 8


def _with(ids: Ids, subscription_id: str) -> Ids:
    if isinstance(ids, set):
        ids.add(subscription_id)
        return ids
    if subscription_id in ids:
        return ids
    if len(ids) < _SMALL:
        return (*ids, subscription_id)
    return {*ids, subscription_id}


def _without(ids: Ids, subscription_id: str) -> Ids:
    if isinstance(ids, set):
        ids.discard(subscription_id)
        return ids or ()
    return tuple(other for other in ids if other != subscription_id)


class _Index:
    """Buckets by key, for subscriptions that want the same kinds of event."""

    def __init__(self) -> None:
        self.single: dict[str, dict[str, Bucket]] = {shape: {} for shape in _SINGLE_SHAPES}
        self.nested: dict[str, dict[str, dict[str, Bucket]]] = {
            shape: {} for shape in _NESTED_SHAPES
        }

    def file(self, place: Place, subscription_id: str) -> None:
        shape, first, second, sure = place
        if second is None:
            buckets = self.single[shape]
        else:
            by_first = self.nested[shape]
            buckets = by_first.get(first) or by_first.setdefault(first, {})
            first = second
        bucket = buckets.get(first)
        if bucket is None:
            bucket = buckets[first] = [(), ()]
        slot = _SURE if sure else _CHECK
        bucket[slot] = _with(bucket[slot], subscription_id)

    def unfile(self, place: Place, subscription_id: str) -> None:
        shape, first, second, sure = place
        if second is None:
            by_first = None
            buckets = self.single[shape]
            name = first
        else:
            by_first = self.nested[shape]
            buckets = by_first[first]
            name = second
        bucket = buckets[name]
        slot = _SURE if sure else _CHECK
        bucket[slot] = _without(bucket[slot], subscription_id)
        if not (bucket[_SURE] or bucket[_CHECK]):
            del buckets[name]
            if by_first is not None and not buckets:
                del by_first[first]

    def collect(
        self,
        employers: Iterable[str],
        cities: Iterable[str],
        title: frozenset[str],
        found: set[str],
        check: set[str],
    ) -> None:
        """Add to `found` the ids whose key the event has and that are sure to match, and
        to `check` the ones whose full rule must still be checked."""
        # This runs for every event: one step per key the event could have, and the work
        # per id left to set.update, in C.
        take, recheck = found.update, check.update
        for buckets, options in self._lookups(employers, cities, title):
            for value in options:
                bucket = buckets.get(value)
                if bucket is not None:
                    take(bucket[_SURE])
                    if bucket[_CHECK]:
                        recheck(bucket[_CHECK])

    def _lookups(
        self, employers: Iterable[str], cities: Iterable[str], title: frozenset[str]
    ) -> Iterator[tuple[dict[str, Bucket], Iterable[str]]]:
        """The buckets to look in, each with the values the event could have there."""
        yield self.single["e"], employers
        yield self.single["c"], cities
        yield self.single["t"], title
        for shape, firsts, seconds in (
            ("ec", employers, cities),
            ("et", employers, title),
            ("ct", cities, title),
        ):
            by_first = self.nested[shape]
            if by_first:
                for first in firsts:
                    by_second = by_first.get(first)
                    if by_second is not None:
                        yield by_second, seconds
        pairs = self.nested["p"]
        if pairs and len(title) > 1:
            # Pairs of title words are filed in sorted order.
            ordered = sorted(title)
            for n, first in enumerate(ordered):
                by_second = pairs.get(first)
                if by_second is not None:
                    yield by_second, ordered[n + 1 :]


class Matcher:
    """All active subscriptions, indexed; `match(event)` returns the ids that want it."""

    def __init__(self) -> None:
        self._subscriptions: dict[str, Compiled] = {}
        # One index per set of kinds wanted: a posting reads the indexes of subscriptions
        # that want postings, and so needs no check of kinds.
        self._indexes: dict[int, _Index] = {}
        # Exclude phrases by their longest word (all must be in the title to veto).
        self._vetoes: dict[str, dict[Words, set[str]]] = {}
        # For articles: the employer and city values in the index (with how many places hold
        # each), how many of them start with each word, so an article only reads runs that
        # start with one, and the longest, in words and in characters.
        self._values: dict[str, dict[str, int]] = {"e": {}, "c": {}}
        self._first_words: dict[str, dict[str, int]] = {"e": {}, "c": {}}
        self._longest = {"e": 1, "c": 1}
        self._longest_chars = {"e": 1, "c": 1}

    def __len__(self) -> int:
        return len(self._subscriptions)

    def __contains__(self, subscription_id: object) -> bool:
        return subscription_id in self._subscriptions

    def add(self, subscription_id: str, criteria: Criteria) -> None:
        """Index a subscription, replacing one with the same id."""
        if subscription_id in self._subscriptions:
            self.remove(subscription_id)
        compiled = Compiled.of(criteria)
        self._subscriptions[subscription_id] = compiled
        index = self._indexes.get(compiled.kinds) or self._indexes.setdefault(
            compiled.kinds, _Index()
        )
        for place in compiled.places:
            index.file(place, subscription_id)
            self._count_values(place, +1)
        for phrase_ in compiled.exclude:
            by_phrase = self._vetoes.setdefault(_longest(phrase_), {})
            by_phrase.setdefault(phrase_, set()).add(subscription_id)

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
        index = self._indexes[compiled.kinds]
        for place in compiled.places:
            index.unfile(place, subscription_id)
            self._count_values(place, -1)
        for phrase_ in compiled.exclude:
            word = _longest(phrase_)
            ids = self._vetoes[word][phrase_]
            ids.discard(subscription_id)
            if not ids:
                del self._vetoes[word][phrase_]
                if not self._vetoes[word]:
                    del self._vetoes[word]

    def _count_values(self, place: Place, step: int) -> None:
        shape, first, second, _ = place
        for field, value in zip(shape, (first, second), strict=False):
            if value is not None and field in self._values:
                self._count_value(field, value, step)

    def _count_value(self, field: str, value: str, step: int) -> None:
        counts = self._values[field]
        count = counts.get(value, 0) + step
        if count and (step < 0 or count > 1):
            counts[value] = count
            return
        # The value enters or leaves the index.
        first, *more = value.split(" ")
        firsts = self._first_words[field]
        if count:
            counts[value] = count
            firsts[first] = firsts.get(first, 0) + 1
            self._longest[field] = max(self._longest[field], len(more) + 1)
            self._longest_chars[field] = max(self._longest_chars[field], len(value))
        else:
            del counts[value]
            firsts[first] -= 1
            if not firsts[first]:
                del firsts[first]

    def match(self, event: Event) -> set[str]:
        """The ids of the subscriptions that want this event."""
        features = Features.of(event)
        kind = features.kind
        if kind == POSTING:
            employers: Iterable[str] = _leading_runs(features.employer)
            cities: Iterable[str] = _leading_runs(features.city)
        else:
            employers = self._present("e", features.text, features.vocabulary, features.companies)
            cities = self._present(
                "c", features.city_text, features.city_vocabulary, features.cities
            )
        title = features.title
        found: set[str] = set()
        check: set[str] = set()
        for kinds, index in self._indexes.items():
            if kinds & kind:
                index.collect(employers, cities, title, found, check)
        subscriptions = self._subscriptions
        for subscription_id in check - found:
            if matches(subscriptions[subscription_id], features):
                found.add(subscription_id)
        if found and self._vetoes:
            self._veto(found, title)
        return found

    def _veto(self, found: set[str], title: frozenset[str]) -> None:
        """Drop from `found` the subscriptions with an exclude phrase the title holds."""
        for word in title:
            for phrase_, ids in self._vetoes.get(word, {}).items():
                if title.issuperset(phrase_):
                    found -= ids

    def scan(self, event: Event) -> set[str]:
        """The same answer as `match`, by checking every subscription: the baseline the
        index is measured and tested against."""
        features = Features.of(event)
        return {
            subscription_id
            for subscription_id, compiled in self._subscriptions.items()
            if matches(compiled, features)
        }

    def _present(
        self, field: str, text: str, text_words: frozenset[str], entries: tuple[Words, ...]
    ) -> set[str]:
        """The indexed employer or city values an article has: runs of its text (each part
        a phrase, parts on their own lines) and leading words of its companies or cities
        entries."""
        found: set[str] = set()
        for entry in entries:
            found.update(_leading_runs(entry))
        values = self._values[field]
        firsts = self._first_words[field]
        longest, chars = self._longest[field], self._longest_chars[field]
        # Which indexed first words the text has at all is a set operation, in C; only
        # those few are looked for, with str.find, and only as far as the longest value
        # reaches (a run cut short there is longer than any value, so it finds nothing).
        for first in firsts.keys() & text_words:
            needle = f" {first} "
            at = text.find(needle)
            while at >= 0:
                start = at + 1
                run = text[start : start + chars + 1].split("\n", 1)[0].split()
                found.update(" ".join(run[:n]) for n in range(1, min(longest, len(run)) + 1))
                at = text.find(needle, start)
        # Runs that are no one's value would only be looked up in vain.
        return found & values.keys()
