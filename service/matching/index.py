"""The index the service matches with: the rules of rules.py, in Rust.

`Matcher`, what the service runs, holds the rules in an index written in Rust (`native/`, the
`jobwire_native` module), because at a million subscriptions an event matches hundreds of them
and Python objects per match were the cost. Each subscription is filed under keys built from
its most selective fields (employer with city, else one of them with a title word, else one
field; a title alone by its word or its two longest words); an event computes the few keys it
could have and looks them up; most keys settle the rule on their own and the rest are checked
one by one; exclude phrases veto at the end. A hypothesis test holds the index to the scan.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from jobwire_native import Index

from consumers.events import Event, JobPosting
from service.matching.normalize import CITY_WORDS, LEGAL_FORMS, general_words
from service.matching.rules import kind_bits

if TYPE_CHECKING:  # Criteria's validation reads normalize: no cycle at run time
    from service.subscriptions import Criteria


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
            kind_bits(criteria.kinds),
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
