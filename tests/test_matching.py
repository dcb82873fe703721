"""The matching rules users rely on, and the index agreeing with a plain scan of them."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.events import Article, Event, JobPosting
from service.matching import Compiled, Features, Matcher, Scan, matches
from service.subscriptions import Criteria


def posting(employer: str, title: str, city: str) -> JobPosting:
    return JobPosting(id="p", employer=employer, title=title, city=city)


def wants(event: Event, **criteria: object) -> bool:
    matcher = Matcher()
    matcher.add("s", Criteria.model_validate(criteria))
    return matcher.match(event) == {"s"}


ARTICLE = Article(
    id="a",
    headline="U.S. explores restrictions on Ant Group, Tencent payment platforms",
    body="The United States is considering restrictions on China's Ant Group as well as "
    "Tencent Holdings Ltd over concerns.\n\nTalks in Hong Kong and St. Louis went on.",
    companies=["Ant Group", "Tencent"],
    cities=["Hong Kong"],
)


def test_employer_matches_the_whole_name_or_its_leading_words() -> None:
    ross = posting("ROSS STORES", "Store Protection Specialist", "Dallas")
    assert wants(ross, employers=["Ross"])
    assert wants(ross, employers=["ross stores inc"])
    assert not wants(ross, employers=["Stores"])
    assert not wants(posting("NORDSTROM", "Agent", "Portland"), employers=["Nordstrom Rack"])
    assert wants(posting("MACY'S", "Detective", "Carlsbad"), employers=["macys"])


def test_city_matches_like_employer() -> None:
    assert wants(posting("MACY'S", "Detective", "Woodbridge Township"), cities=["Woodbridge"])
    assert not wants(posting("MACY'S", "Detective", "Woodbridge Township"), cities=["Township"])
    assert wants(posting("A", "B", "St. Louis"), cities=["Saint Louis"])
    # Typed without the ʻokina, or with an acute accent for it: the same place.
    assert wants(posting("A", "B", "Oʻahu"), cities=["Oahu"])
    assert wants(posting("A", "B", "Hawaii Kai"), cities=["Hawai´i"])


def test_title_needs_every_word_in_any_order() -> None:
    detective = posting("MACY'S", "Asset Protection Detective, Park Meadows", "Lone Tree")
    assert wants(detective, titles=["protection detective"])
    assert wants(detective, titles=["Detectives"])
    assert not wants(detective, titles=["store detective"])


def test_every_field_must_match_and_any_value_within_one() -> None:
    agent = posting("NORDSTROM", "Asset Protection Agent - Cascade Station Rack", "Portland")
    assert wants(agent, employers=["NORDSTROM"], cities=["Portland"])
    assert not wants(agent, employers=["NORDSTROM"], cities=["Gilbert"])
    assert wants(agent, employers=["NORDSTROM"], cities=["Gilbert", "Portland"])
    assert wants(agent, employers=["Macy's", "Nordstrom"], titles=["agent"], cities=["portland"])


def test_exclude_vetoes_when_all_its_words_are_in_the_title() -> None:
    park = posting("MACY'S", "Asset Protection Detective, Park Meadows", "Lone Tree")
    assert not wants(park, titles=["detective"], exclude=["park meadows"])
    assert wants(park, titles=["detective"], exclude=["park avenue"])


def test_kinds_limit_what_a_subscription_sees() -> None:
    agent = posting("Tencent", "Engineer", "Shenzhen")
    assert not wants(agent, employers=["Tencent"], kinds=["article"])
    assert wants(ARTICLE, employers=["Tencent"], kinds=["article"])
    assert not wants(ARTICLE, employers=["Tencent"], kinds=["posting"])


def test_articles_match_runs_of_the_text_or_their_companies_and_cities() -> None:
    assert wants(ARTICLE, employers=["Tencent"])
    assert wants(ARTICLE, employers=["Tencent Holdings"])
    assert wants(ARTICLE, employers=["Ant Group"])
    assert not wants(ARTICLE, employers=["Group Ant"])
    assert wants(ARTICLE, cities=["Hong Kong"])
    assert wants(ARTICLE, cities=["Saint Louis"])  # "St. Louis" in the body
    assert wants(ARTICLE, titles=["restrictions tencent"])  # the headline
    assert not wants(ARTICLE, titles=["talks"])  # only in the body
    # A run may not span the headline and the body.
    assert not wants(ARTICLE, employers=["platforms The United"])


def test_the_samples_reach_the_expected_subscriptions(sample_events: list[Event]) -> None:
    matcher = Matcher()
    matcher.add("nordstrom-portland", Criteria(employers=["NORDSTROM"], cities=["Portland"]))
    matcher.add("dallas", Criteria(titles=["Store Protection Specialist"], cities=["Dallas"]))
    matcher.add("macys", Criteria(employers=["MACY'S"]))
    matcher.add("tencent", Criteria(employers=["Tencent"]))
    hits = Counter(s for event in sample_events for s in matcher.match(event))
    assert hits == {"nordstrom-portland": 2, "dallas": 1, "macys": 6, "tencent": 1}


def test_add_replace_and_remove_update_the_index() -> None:
    agent = posting("NORDSTROM", "Agent", "Portland")
    matcher = Matcher()
    matcher.add("s", Criteria(employers=["NORDSTROM"]))
    assert matcher.match(agent) == {"s"}
    matcher.add("s", Criteria(employers=["Macy's"]))
    assert matcher.match(agent) == set()
    assert len(matcher) == 1
    matcher.remove("s")
    matcher.remove("s")  # removing twice is harmless
    matcher.add("s", Criteria(cities=["Portland"]))
    assert matcher.match(agent) == {"s"}
    assert "s" in matcher


# -- the index against a plain scan ----------------------------------------------------------

VOCABULARY = [
    "acme",
    "ross",
    "store",
    "st",
    "saint",
    "louis",
    "new",
    "york",
    "agent",
    "asset",
    "protection",
    "macy's",
    "co",
    "inc",
    "hong",
    "kong",
    "&",
    "détective",
    "oahu",
    "oʻahu",
    "o´ahu",
    "o’ahu",
]
phrase_ = st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=3).map(" ".join)
# Now and then many values, past the 64 combinations the index files one by one.
values = st.one_of(st.lists(phrase_, max_size=3), st.lists(phrase_, min_size=9, max_size=10))


@st.composite
def criteria(draw: st.DrawFn) -> Criteria:
    employers, cities, titles = draw(values), draw(values), draw(values)
    if not (employers or cities or titles):
        employers = [draw(phrase_)]
    kinds = draw(st.sampled_from([["posting"], ["article"], ["posting", "article"]]))
    return Criteria(
        employers=employers,
        cities=cities,
        titles=titles,
        exclude=draw(st.lists(phrase_, max_size=1)),
        kinds=kinds,
    )


events = st.one_of(
    st.builds(JobPosting, id=st.just("p"), employer=phrase_, title=phrase_, city=phrase_),
    st.builds(
        Article,
        id=st.just("a"),
        headline=phrase_,
        body=st.lists(phrase_, max_size=8).map(". ".join),
        companies=st.lists(phrase_, max_size=2),
        cities=st.lists(phrase_, max_size=2),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subscriptions=st.lists(criteria(), min_size=1, max_size=12),
    event_list=st.lists(events, min_size=1, max_size=4),
    removed=st.sets(st.integers(min_value=0, max_value=11)),
)
def test_the_index_finds_exactly_what_a_plain_scan_finds(
    subscriptions: list[Criteria], event_list: list[Event], removed: set[int]
) -> None:
    matcher, scan = Matcher(), Scan()
    matcher.add_many((f"s{n}", c) for n, c in enumerate(subscriptions))
    for n, c in enumerate(subscriptions):
        scan.add(f"s{n}", c)
    for event in event_list:
        features = Features.of(event)
        expected = {
            f"s{n}" for n, c in enumerate(subscriptions) if matches(Compiled.of(c), features)
        }
        assert matcher.match(event) == expected
        assert scan.match(event) == expected
    # Removing subscriptions updates the index in place: it still agrees with the scan, and
    # once everything is gone nothing matches.
    for n in removed:
        matcher.remove(f"s{n}")
        scan.remove(f"s{n}")
    for event in event_list:
        assert matcher.match(event) == scan.match(event)
    for n in range(len(subscriptions)):
        matcher.remove(f"s{n}")
    assert all(matcher.match(event) == set() for event in event_list)
    assert len(matcher) == 0
    # ...and leaves nothing behind (a long-running service adds and removes all day).
    assert matcher.index_stats() == {
        "subscriptions": 0,
        "keys": 0,
        "values": 0,
        "first_words": 0,
        "with_exclude": 0,
    }


def test_values_without_words_match_nothing_and_break_nothing() -> None:
    # Validation refuses them now, but a store may hold some from before it did.
    matcher = Matcher()
    matcher.add(
        "s",
        Criteria.model_construct(
            employers=["!!!"], titles=[], cities=[], exclude=[], kinds=["posting"]
        ),
    )
    assert matcher.match(posting("ACME", "Agent", "Portland")) == set()
