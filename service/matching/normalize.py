"""How text is compared: the same normalization for events and for subscriptions.

Apostrophe-like marks dropped without a gap (`MACY'S` -> `macys`, `Oʻahu` -> `oahu`), NFKC,
casefold, accents stripped, `&` -> `and`, anything else that is not a letter or digit -> a
space, then words. A word of more than three letters ending in a single `s` loses it
(`Stores` -> `store`). Employer names drop trailing legal forms (`Tencent Holdings Ltd` ->
`tencent holding`); city names spell out `st`, `ft` and `mt` (`St. Louis` -> `saint loui`).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

Words = tuple[str, ...]

# What people and gazetteers write for an apostrophe: ASCII ' and `, the right and left single
# quotes (U+2019, U+2018), the modifier apostrophe (U+02BC), the Hawaiian ʻokina (U+02BB) and the
# acute accent (U+00B4). They go before NFKC, which would split a word at the acute accent (it
# becomes a space and a combining accent), and again after it, for the compatibility forms it
# folds into ' and ` (the full-width apostrophe, say).
APOSTROPHES = "'`\u2019\u2018\u02bc\u02bb\u00b4"
_APOSTROPHES = str.maketrans("", "", APOSTROPHES)
_NOT_ALNUM = re.compile(r"[\W_]+")
LEGAL_FORMS = frozenset(
    [
        "inc",
        "llc",
        "ltd",
        "limited",
        "corp",
        "corporation",
        "co",
        "company",
        "plc",
        "gmbh",
        "sa",
        "ag",
        "nv",
        "bv",
    ]
)
CITY_WORDS = {"st": "saint", "ft": "fort", "mt": "mount"}


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return sys.intern(word)


# Plain ASCII, the usual case, takes one translate: NFKC leaves it as it is and casefold is
# lower(). The table does what the general path does with the regular expression.
_ASCII = str.maketrans(
    {
        **{chr(c): " " for c in range(128) if not chr(c).isalnum()},
        "'": None,
        "`": None,
        "&": " and ",
    }
)


@lru_cache(maxsize=1 << 17)
def words(text: str) -> Words:
    """The normalized words of a piece of text."""
    if text.isascii():
        return tuple(map(_stem, text.lower().translate(_ASCII).split()))
    return general_words(text)


def general_words(text: str) -> Words:
    """`words` for any text: the rules as written, and the reference for the ASCII path."""
    text = unicodedata.normalize("NFKC", text.translate(_APOSTROPHES)).casefold()
    if not text.isascii():
        text = "".join(
            c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
        )
    text = text.translate(_APOSTROPHES).replace("&", " and ")
    return tuple(map(_stem, _NOT_ALNUM.sub(" ", text).split()))


@lru_cache(maxsize=1 << 16)
def employer_words(name: str) -> Words:
    """An employer's words without trailing legal forms (never stripped to nothing)."""
    found = words(name)
    while len(found) > 1 and found[-1] in LEGAL_FORMS:
        found = found[:-1]
    return found


@lru_cache(maxsize=1 << 16)
def city_words(name: str) -> Words:
    """A city's words with `st`, `ft` and `mt` spelled out."""
    return city_form(words(name))


def city_form(found: Words) -> Words:
    """`found` with `st`, `ft` and `mt` spelled out; the same tuple when it has none, as most
    text does (a set test in C says so)."""
    if CITY_WORDS.keys().isdisjoint(found):
        return found
    return tuple(CITY_WORDS.get(word, word) for word in found)


def phrase(found: Words) -> str:
    """Words as one string with a space on each side, so `in` finds whole-word runs."""
    return f" {' '.join(found)} "
