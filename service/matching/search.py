"""Search words: what lets the store find the stored events a subscription could match.

Each recent event is kept with `search_text`, the distinct normalized words the rules can read
in it; `candidate_words` gives, for a subscription, words of which a matching event has one per
field. A LIKE per word in SQL narrows 100,000 stored events to the few that could match, and
the matcher decides on those (service/preview.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consumers.events import Event, JobPosting
from service.matching.index import new_index
from service.matching.normalize import city_form, city_words, employer_words, words

if TYPE_CHECKING:  # Criteria's validation reads normalize: no cycle at run time
    from service.subscriptions import Criteria


_words = new_index().words


def search_text(event: Event) -> str:
    """The distinct normalized words the rules can read in an event, as `" w1 w2 … "`.

    Stored with each recent event: every word of a value that matches must be among them, so
    `" word " in search_text` (a LIKE in SQL) narrows stored events to the few that could match
    a subscription before the matcher decides (see `candidate_words`).
    """
    found: set[str]
    if isinstance(event, JobPosting):
        # Titles are mostly new each time: Rust's normalization (the index's, the same rules)
        # is three times Python's; employers and cities repeat and come from the cache.
        found = {*employer_words(event.employer), *_words(event.title), *city_words(event.city)}
    else:
        headline, body = words(event.headline), tuple(_words(event.body))
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
