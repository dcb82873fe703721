"""Which of the recent events a subscription would have matched: the web page's live preview
and `jobwire match --recent`.

The store narrows the window's events to those sharing a word with the subscription (see
`RecentEvents.candidates`); the service's own matcher, with only this subscription in it,
decides on those, so a preview never disagrees with what the service would have sent.
"""

from __future__ import annotations

from datetime import timedelta

from consumers.events import Event
from service.matching import Matcher, candidate_words
from service.store import Store, utcnow
from service.subscriptions import Criteria


async def recent_matches(store: Store, criteria: Criteria, days: float) -> list[Event]:
    """The events of the last `days` days that `criteria` matches, newest first."""
    since = utcnow() - timedelta(days=days)
    found = await store.events.candidates(since, criteria.kinds, candidate_words(criteria))
    matcher = Matcher()
    matcher.add("preview", criteria)
    return [event for event in found if matcher.match(event)]
