"""Normalization: the same text always compares the same way, events and subscriptions alike."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.matching import new_index
from service.matching.normalize import APOSTROPHES, city_words, employer_words, general_words, words

# ASCII, and the marks people and gazetteers write for an apostrophe: each counts as `'`.
ASCII_AND_APOSTROPHES = st.characters(max_codepoint=127) | st.sampled_from(APOSTROPHES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MACY'S", ("macy",)),  # apostrophe dropped without a gap, then the plural s
        ("Macy’s", ("macy",)),
        ("Asset Protection Detectives", ("asset", "protection", "detective")),
        ("ROSS STORES", ("ross", "store")),
        ("Boss Class", ("boss", "class")),  # ss stays
        ("Bus Gas", ("bus", "gas")),  # three letters or fewer keep their s
        ("Crate & Barrel", ("crate", "and", "barrel")),
        (
            "Asset Protection - Coordinator - Portland",
            ("asset", "protection", "coordinator", "portland"),
        ),
        ("Café Zürich", ("cafe", "zurich")),
        ("ＮＯＲＤＳＴＲＯＭ", ("nordstrom",)),  # NFKC folds full-width letters
        ("  ", ()),
    ],
)
def test_words(text: str, expected: tuple[str, ...]) -> None:
    assert words(text) == expected


def test_trailing_legal_forms_are_ignored_in_employer_names() -> None:
    assert employer_words("Tencent Holdings Ltd") == ("tencent", "holding")
    assert employer_words("Acme Corp.") == ("acme",)
    assert employer_words("Acme Co Inc") == ("acme",)
    assert employer_words("Company") == ("company",)  # never stripped to nothing
    assert employer_words("Co Op Foods") == ("co", "op", "food")  # only trailing ones


def test_city_abbreviations_are_spelled_out() -> None:
    assert city_words("St. Louis") == city_words("Saint Louis")
    assert city_words("Ft Worth") == ("fort", "worth")
    assert city_words("Mt. Shasta") == ("mount", "shasta")


@pytest.mark.parametrize(
    "mark",
    [
        "'",
        "`",
        "\u2019",  # right single quote
        "\u2018",  # left single quote
        "\u02bc",  # modifier letter apostrophe
        "\u02bb",  # the Hawaiian ʻokina
        "\u00b4",  # the acute accent, which NFKC turns into a space and a combining accent
    ],
)
def test_apostrophe_like_marks_are_dropped_without_a_gap(mark: str) -> None:
    # A place written with an ʻokina is the place typed without it, in the rules and the index.
    assert words(f"O{mark}ahu") == words("Oahu") == ("oahu",)
    assert city_words(f"Hawai{mark}i Kai") == ("hawaii", "kai")
    assert new_index().words(f"Ka{mark}anapali") == ["kaanapali"]


def test_full_width_apostrophes_count_too() -> None:
    assert words("O\uff07ahu") == words("O\uff40ahu") == ("oahu",)


@given(st.text(alphabet=ASCII_AND_APOSTROPHES, max_size=40))
def test_the_ascii_shortcut_gives_what_the_rules_give(text: str) -> None:
    assert words(text) == general_words(text)


@given(st.text(alphabet=ASCII_AND_APOSTROPHES, max_size=40))
def test_the_index_normalizes_ascii_as_the_rules_do(text: str) -> None:
    # The index (Rust) normalizes ASCII itself and hands any other text to general_words.
    assert tuple(new_index().words(text)) == general_words(text)


@given(st.text(alphabet=ASCII_AND_APOSTROPHES, max_size=40))
def test_any_apostrophe_like_mark_is_as_if_it_were_not_there(text: str) -> None:
    without = text.translate(str.maketrans("", "", APOSTROPHES))
    assert words(text) == words(without)
    assert new_index().words(text) == new_index().words(without)


def test_the_index_leaves_other_text_to_the_rules() -> None:
    assert new_index().words("Café Zürich & ＮＯＲＤＳＴＲＯＭ") == [
        "cafe",
        "zurich",
        "and",
        "nordstrom",
    ]
