"""Matching: which subscriptions an event matches.

normalize.py   how text is compared (the same for events and subscriptions)
rules.py       the rules written out in Python, and the plain scan: the reference
index.py       the Rust index the service runs (`Matcher`), held to the rules by a test
search.py      the words that let the store find events a subscription could match
"""

from __future__ import annotations

from service.matching.index import Matcher, Matches, new_index
from service.matching.rules import Compiled, Features, Scan, matches
from service.matching.search import candidate_words, search_text

__all__ = [
    "Compiled",
    "Features",
    "Matcher",
    "Matches",
    "Scan",
    "candidate_words",
    "matches",
    "new_index",
    "search_text",
]
