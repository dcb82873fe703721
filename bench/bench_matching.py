"""Matching throughput: the index against a plain scan, at 10k, 100k and 1M subscriptions.

    python bench/bench_matching.py [--sizes 10000,100000,1000000] [--seconds 3]

Each size runs in its own process (one core, one thread), so its peak RSS is its own. The
synthetic data is seeded: employers from 3,000 names, cities from 3,000, title phrases of 1-3
words from a 2,000-word vocabulary, a mix of field combinations, 10% with an exclude; postings
shaped like the samples (a fifth from a subscribed employer) and articles of about 600 words.
Besides the plain-scan baseline, each size measures how fast the answers alone can be built
from their ids (one visit per id, nothing else): what the number of matches costs by itself.
Figures are printed, never asserted.
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
from service.matching import Matcher
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
    """Events per second over at most `seconds` (at least one event), and matches found."""
    done = found = 0
    started = time.perf_counter()
    while done < len(events):
        found += len(run(events[done]))
        done += 1
        if time.perf_counter() - started > seconds:
            break
    return done / (time.perf_counter() - started), found // max(done, 1)


def answer_only(matcher: Matcher, events: list[Event], count: int, seconds: float) -> float:
    """Events per second if finding the matches cost nothing and only the answer, a set of
    ids, had to be built from its ids. The ids are those `match` returns, held in lists, so
    each is visited once, as it is when an answer is put together. `count` events are
    enough: matching them takes about a second."""
    sample = events[: max(1, count)]
    answers = {event.id: list(matcher.match(event)) for event in sample}
    return rate(lambda event: set(answers[event.id]), sample, seconds)[0]


def measure(size: int, seconds: float) -> dict[str, float]:
    world = World()
    postings, articles = world.postings(20_000), world.articles(400)
    matcher = Matcher()
    # Build time is the index's alone: subscriptions are generated in chunks, off the clock,
    # as a service reads them from its store.
    build_s = 0.0
    generated = world.subscriptions(size)
    while chunk := list(islice(generated, 10_000)):
        started = time.perf_counter()
        matcher.add_many(chunk)
        build_s += time.perf_counter() - started
    posting_rate, posting_hits = rate(matcher.match, postings, seconds)
    article_rate, article_hits = rate(matcher.match, articles, seconds)
    scan_postings, _ = rate(matcher.scan, postings, seconds)
    scan_articles, _ = rate(matcher.scan, articles, seconds)
    answer_postings = answer_only(matcher, postings, int(posting_rate), seconds)
    answer_articles = answer_only(matcher, articles, int(article_rate), seconds)
    return {
        "size": size,
        "build_s": build_s,
        "postings_per_s": posting_rate,
        "scan_postings_per_s": scan_postings,
        "articles_per_s": article_rate,
        "scan_articles_per_s": scan_articles,
        "answer_postings_per_s": answer_postings,
        "answer_articles_per_s": answer_articles,
        "matches_per_posting": posting_hits,
        "matches_per_article": article_hits,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


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
        f"{'subs':>9} {'build s':>8} {'postings/s':>11} {'scan/s':>8} {'ratio':>7} "
        f"{'answer/s':>9} {'articles/s':>11} {'scan/s':>8} {'ratio':>7} {'answer/s':>9} "
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
            f"{size:>9,} {r['build_s']:>8.1f} {r['postings_per_s']:>11,.0f} "
            f"{r['scan_postings_per_s']:>8,.1f} "
            f"{r['postings_per_s'] / r['scan_postings_per_s']:>6,.0f}x "
            f"{r['answer_postings_per_s']:>9,.0f} "
            f"{r['articles_per_s']:>11,.0f} {r['scan_articles_per_s']:>8,.1f} "
            f"{r['articles_per_s'] / r['scan_articles_per_s']:>6,.0f}x "
            f"{r['answer_articles_per_s']:>9,.0f} "
            f"{r['matches_per_posting']:>9} {r['matches_per_article']:>8} "
            f"{r['peak_rss_mb']:>7,.0f} MB",
            flush=True,
        )
    print(
        "\nanswer/s: events per second if finding the matches were free and only the set of"
        "\nids returned had to be built from its ids: the cost of the number of matches alone."
        "\nGoals at 1M: >= 100,000 postings/s, >= 5,000 articles/s, build <= 10 s, RSS <= 1.5 GB"
    )


if __name__ == "__main__":
    main()
