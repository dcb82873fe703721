"""Rendering throughput: digests for 100,000 subscriptions × 20 matches, and instant alerts.

    python bench/bench_render.py [--subscriptions 100000] [--matches 20] [--events 21000]

What a digest hour asks of the render stage: every subscription's digest from its matches,
newest first, postings then articles. The matches are drawn from a day's worth of events
(20,000 postings and 1,000 articles, seeded; each posting with a link, each article with a
600-word body), so many subscriptions share events, as they do. A digest is rendered as its
target takes it: the title and one body (`Message` renders a body when it is first read);
the subscriptions take text, HTML (email) and Markdown (chat) in turn. Measured in one run, in
CPU time of this process pinned to one core (the machine may be shared), one thread:

1. digests/s, one body each, starting with an empty entry cache (so the first rendering of
   each of the day's events is included) - the figure the goal is about;
2. digests/s with all three bodies (a subscription with an email and a chat target);
3. instant alerts/s (one event to one subscription: the title and one body, in turn);
4. the baseline, one body each, with the entry cache off (`Renderer(entry_cache=0)`): every
   entry of every digest rendered again, as a digest template that loops over the events does.

The goal (issue #13): at least 20,000 digests/s. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_matching import World

from consumers.events import Article, Event, JobPosting
from service.delivery.render import Renderer

GOAL = 20_000
BASE = "https://jobwire.example.com"


def day_of_events(count: int) -> list[Event]:
    """A day's events: 20 postings to 1 article, each published at its own minute."""
    world = World()
    articles = max(1, count // 21)
    made: list[Event] = []
    for n, posting in enumerate(world.postings(count - articles)):
        assert isinstance(posting, JobPosting)
        made.append(
            posting.model_copy(
                update={
                    "url": f"https://jobs.example.com/{posting.employer.lower()[:12]}/{n}",
                    "contract": "Permanent" if n % 3 else None,
                    "published_at": _minute(n),
                }
            )
        )
    for n, article in enumerate(world.articles(articles)):
        assert isinstance(article, Article)
        made.append(
            article.model_copy(
                update={
                    "url": f"https://news.example.com/{n}",
                    "byline": "Reuters API",
                    "published_at": _minute(n * 20),
                }
            )
        )
    return made


def _minute(n: int) -> object:
    from datetime import UTC, datetime, timedelta

    return datetime(2020, 10, 8, tzinfo=UTC) + timedelta(minutes=n % 1440)


def subscriptions(count: int, matches: int, events: list[Event]) -> list[tuple[str, list[Event]]]:
    rng = random.Random(13)
    return [(f"Subscription {n}", rng.sample(events, matches)) for n in range(count)]


BODIES = ("body", "html", "markdown")


def digests_per_second(
    renderer: Renderer, subs: list[tuple[str, list[Event]]], bodies: tuple[str, ...] = ()
) -> float:
    """Digests rendered per CPU second: the title, and each of `bodies` (default: one, in
    turn)."""
    started = time.process_time()
    for n, (name, matched) in enumerate(subs):
        message = renderer.digest(
            name, matched, f"{BASE}/unsubscribe/s{n}.bWFjbWFjbWFj", f"{BASE}/subscriptions/s{n}"
        )
        for body in bodies or (BODIES[n % 3],):
            getattr(message, body)
    return len(subs) / (time.process_time() - started)


def instants_per_second(renderer: Renderer, events: list[Event], count: int) -> float:
    started = time.process_time()
    for n in range(count):
        message = renderer.instant(
            events[n % len(events)], f"Subscription {n}", f"{BASE}/unsubscribe/s{n}"
        )
        getattr(message, BODIES[n % 3])
    return count / (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--matches", type=int, default=20)
    parser.add_argument("--events", type=int, default=21_000)
    parser.add_argument("--baseline", type=int, default=5_000, help="digests for the baseline")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    events = day_of_events(args.events)
    subs = subscriptions(args.subscriptions, args.matches, events)
    print(
        f"render: {args.subscriptions:,} subscriptions × {args.matches} matches from "
        f"{len(events):,} events; one core"
    )

    digests = digests_per_second(Renderer(), subs)
    every_body = digests_per_second(Renderer(), subs, BODIES)
    instants = instants_per_second(Renderer(), events, args.subscriptions)
    baseline = digests_per_second(Renderer(entry_cache=0), subs[: args.baseline])
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    goal = f"{digests / GOAL:.2f}× the goal of {GOAL:,}/s"
    print(f"  digests, one body each:      {digests:>8,.0f}/s  ({goal})")
    print(f"  digests, all three bodies:   {every_body:>8,.0f}/s")
    ratio = f"digests/instant alerts: {digests / instants:.2f}"
    print(f"  instant alerts, one body:    {instants:>8,.0f}/s  ({ratio})")
    cache = f"the cache: {digests / baseline:.1f}× faster; over {args.baseline:,} digests"
    print(f"  baseline, no entry cache:    {baseline:>8,.0f}/s  ({cache})")
    print(f"  peak RSS {rss_mb:,.0f} MB")


if __name__ == "__main__":
    main()
