"""Matching throughput: the index against a plain scan, at 10k, 100k and 1M subscriptions.

    python bench/bench_matching.py [--sizes 10000,100000,1000000] [--seconds 3]

Each size runs in its own process (one core, one thread), so its peak RSS is its own. The
synthetic data is seeded: employers from 3,000 names, cities from 3,000, title phrases of 1-3
words from a 2,000-word vocabulary, a mix of field combinations, 10% with an exclude; postings
shaped like the samples (a fifth from a subscribed employer) and articles of about 600 words.
Besides the plain-scan baseline (`service.matching.rules.Scan`, the rules as written, one
subscription after another), each size measures the index again with every matching id read
as a string, as the service reads them. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consumers.events import Article, Event, JobPosting
from service.matching import Matcher, Scan
from service.subscriptions import Criteria

SYLLABLES = [
    "nor",
    "dam",
    "ros",
    "ma",
    "cy",
    "tar",
    "get",
    "wal",
    "mart",
    "kro",
    "ger",
    "ben",
    "ton",
    "vel",
    "ar",
    "lin",
    "sal",
    "ko",
    "pe",
    "rix",
]
CITY_PARTS = [
    "port",
    "land",
    "san",
    "ta",
    "river",
    "grove",
    "spring",
    "field",
    "lake",
    "wood",
    "bridge",
    "ville",
    "haven",
]
# Job and news words: their own syllables, so a word never happens to be an employer's name.
WORD_SYLLABLES = [
    "qua",
    "zen",
    "fli",
    "bro",
    "ste",
    "cho",
    "dri",
    "plu",
    "wex",
    "yon",
    "tha",
    "gri",
    "mou",
    "spe",
    "cla",
    "bli",
]
VOCABULARY = [f"{a}{b}{c}" for a in WORD_SYLLABLES for b in WORD_SYLLABLES for c in "aeiouy"][:2000]
FILLER = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "on",
    "for",
    "with",
    "as",
    "by",
    "at",
    "from",
    "that",
    "this",
    "is",
    "was",
    "are",
    "were",
]


class World:
    """The names and words everything is drawn from, the same in every run."""

    def __init__(self, seed: int = 8) -> None:
        rng = random.Random(seed)
        self.employers = sorted(
            {
                " ".join(
                    rng.choice(SYLLABLES) + rng.choice(SYLLABLES)
                    for _ in range(rng.choice([1, 1, 2, 2, 3]))
                ).title()
                for _ in range(4000)
            }
        )[:3000]
        self.cities = sorted(
            {
                (
                    rng.choice(["", "", "", "St. ", "Mt. ", "New "])
                    + "".join(rng.sample(CITY_PARTS, 2))
                ).title()
                + rng.choice(["", "", f" {rng.choice(CITY_PARTS).title()}"])
                for _ in range(4000)
            }
        )[:3000]

    def subscriptions(self, count: int, seed: int = 1) -> Iterator[tuple[str, Criteria]]:
        rng = random.Random(seed)
        shapes = ["e"] * 30 + ["ec"] * 20 + ["ct"] * 15 + ["t"] * 15 + ["c"] * 10 + ["et"] * 10
        for n in range(count):
            shape = rng.choice(shapes)
            fields: dict[str, object] = {
                "employers": [rng.choice(self.employers) for _ in range(rng.choice([1, 1, 2]))]
                if "e" in shape
                else [],
                "cities": [rng.choice(self.cities)] if "c" in shape else [],
                "titles": [" ".join(rng.sample(VOCABULARY, rng.choice([1, 2, 3])))]
                if "t" in shape
                else [],
                "exclude": [rng.choice(VOCABULARY)] if rng.random() < 0.1 else [],
                "kinds": ["posting", "article"],
            }
            # Generated values are valid by construction; validating a million adds nothing.
            yield f"s{n:07d}", Criteria.model_construct(**fields)

    def postings(self, count: int, seed: int = 2) -> list[Event]:
        rng = random.Random(seed)
        # Most postings come from employers nobody subscribed to by name: boards list far
        # more employers than the few thousand people follow.
        others = [
            f"{a}{b} {c}{d}".title()
            for a, b, c, d in zip(
                *(rng.choices(SYLLABLES, k=50_000) for _ in range(4)), strict=True
            )
        ]
        return [
            JobPosting(
                id=f"p{n}",
                employer=(rng.choice(self.employers) if rng.random() < 0.2 else rng.choice(others))
                + rng.choice(["", "", " Inc"]),
                title=" ".join(rng.sample(VOCABULARY, rng.randint(3, 7))).title(),
                city=rng.choice(self.cities),
            )
            for n in range(count)
        ]

    def articles(self, count: int, seed: int = 3) -> list[Event]:
        rng = random.Random(seed)
        out: list[Event] = []
        for n in range(count):
            body = [rng.choice(FILLER if rng.random() < 0.5 else VOCABULARY) for _ in range(600)]
            for name in rng.sample(self.employers, 3) + rng.sample(self.cities, 2):
                body.insert(rng.randrange(len(body)), name)
            out.append(
                Article(
                    id=f"a{n}",
                    headline=" ".join(rng.sample(VOCABULARY, 8)).title(),
                    body=" ".join(body),
                    companies=rng.sample(self.employers, 2),
                    cities=[rng.choice(self.cities)],
                )
            )
        return out


def rate(
    run: Callable[[Event], Collection[str]], events: list[Event], seconds: float
) -> tuple[float, int]:
    """Events per second over about `seconds` (at least one event, going round the list as
    often as it takes), and matches per event."""
    done = found = 0
    started = time.perf_counter()
    while True:
        found += len(run(events[done % len(events)]))
        done += 1
        if time.perf_counter() - started > seconds:
            break
    return done / (time.perf_counter() - started), found // done


def with_ids(matcher: Matcher) -> Callable[[Event], Collection[str]]:
    """`match`, with every id of the answer read as a string, as the service reads them."""
    return lambda event: list(matcher.match(event))


def measure(size: int, seconds: float) -> dict[str, float]:
    world = World()
    postings, articles = world.postings(20_000), world.articles(400)
    matcher = Matcher()
    # Build times are the index's (the scan's) alone: subscriptions are generated in chunks,
    # off the clock, as a service reads them from its store.
    build_s = timed_build(matcher, world, size)
    posting_rate, posting_hits = rate(matcher.match, postings, seconds)
    article_rate, article_hits = rate(matcher.match, articles, seconds)
    posting_ids, _ = rate(with_ids(matcher), postings, seconds)
    article_ids, _ = rate(with_ids(matcher), articles, seconds)
    # The index's own peak, before the baseline's compiled subscriptions are built.
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del matcher
    scan = Scan()
    scan_build_s = timed_build(scan, world, size)
    scan_postings, _ = rate(scan.match, postings, seconds)
    scan_articles, _ = rate(scan.match, articles, seconds)
    return {
        "size": size,
        "build_s": build_s,
        "scan_build_s": scan_build_s,
        "postings_per_s": posting_rate,
        "postings_with_ids_per_s": posting_ids,
        "scan_postings_per_s": scan_postings,
        "articles_per_s": article_rate,
        "articles_with_ids_per_s": article_ids,
        "scan_articles_per_s": scan_articles,
        "matches_per_posting": posting_hits,
        "matches_per_article": article_hits,
        "peak_rss_mb": peak_rss_mb,
    }


def timed_build(target: Matcher | Scan, world: World, size: int) -> float:
    spent = 0.0
    generated = world.subscriptions(size)
    while chunk := list(islice(generated, 10_000)):
        started = time.perf_counter()
        for subscription_id, criteria in chunk:
            target.add(subscription_id, criteria)
        spent += time.perf_counter() - started
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated counts")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per throughput figure")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.seconds)))
        return

    header = (
        f"{'subs':>9} {'build s':>8} {'scan':>6} {'postings/s':>11} {'+ids':>9} {'scan/s':>8} "
        f"{'ratio':>8} {'articles/s':>11} {'+ids':>8} {'scan/s':>7} {'ratio':>7} "
        f"{'hits/post':>9} {'hits/art':>8} {'peak RSS':>9}"
    )
    print(header)
    print("-" * len(header))
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(size), "--seconds", str(args.seconds)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out)
        print(
            f"{size:>9,} {r['build_s']:>8.1f} {r['scan_build_s']:>6.1f} "
            f"{r['postings_per_s']:>11,.0f} {r['postings_with_ids_per_s']:>9,.0f} "
            f"{r['scan_postings_per_s']:>8,.1f} "
            f"{r['postings_per_s'] / r['scan_postings_per_s']:>7,.0f}x "
            f"{r['articles_per_s']:>11,.0f} {r['articles_with_ids_per_s']:>8,.0f} "
            f"{r['scan_articles_per_s']:>7,.1f} "
            f"{r['articles_per_s'] / r['scan_articles_per_s']:>6,.0f}x "
            f"{r['matches_per_posting']:>9} {r['matches_per_article']:>8} "
            f"{r['peak_rss_mb']:>7,.0f} MB",
            flush=True,
        )
    print(
        "\nbuild s: the index's build; scan: the baseline's (compiling every subscription)."
        "\n+ids: the same events per second with every matching id read as a string."
        "\npeak RSS: the index's process, before the baseline is built."
        "\nGoals at 1M: >= 100,000 postings/s, >= 5,000 articles/s, build <= 10 s, RSS <= 1.5 GB"
    )


if __name__ == "__main__":
    main()
