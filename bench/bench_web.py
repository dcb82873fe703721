"""How fast the web page answers, in the app itself (httpx in process: no network, no browser).

    python bench/bench_web.py [--events 100000] [--repeat 30]

A store with 100,000 events received over the last 7 days (bench_store.py's `fill`), a
signed-in person with 20 subscriptions and 500 alerts in the ledger. Each page is asked
`--repeat` times; the median and the slowest are printed. The live preview is what a person
waits for while typing: the page's script asks for it 250 ms after the last key.
Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from bench_matching import World
from bench_store import fill

from config.settings import LimitSettings
from service.delivery import AppriseNotifier
from service.own_mail import own_mail_target
from service.registry import SubscriptionRegistry
from service.store import Match, Store
from service.subscriptions import SubscriptionIn
from service.system_mail import MailRouting
from service.targets import TargetPolicy
from service.unsubscribe import UnsubscribeLinks
from service.web import ApiContext, create_api


async def timed(ask: object, repeat: int) -> tuple[float, float, int]:
    times, status = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        answer = await ask()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
        status = answer.status_code
    return statistics.median(times), max(times), status


async def run(count: int, repeat: int) -> None:
    folder = Path(tempfile.mkdtemp())
    store = await Store.open(f"sqlite+aiosqlite:///{folder / 'web.db'}")
    world = World()
    await fill(store, world, count)
    user = await store.accounts.for_email("ana@example.com")
    rng = random.Random(3)
    subs = []
    for n in range(20):
        subs.append(
            await store.subscriptions.add(
                SubscriptionIn(
                    name=f"alert {n}",
                    employers=[rng.choice(world.employers)],
                    cities=[rng.choice(world.cities)],
                    notify=[own_mail_target("ana@example.com")],
                ),
                owner=user.id,
            )
        )
    postings = world.postings(500, seed=4)
    await store.ledger.record(
        postings,
        [Match(subs[n % 20].id, e, subs[n % 20].target_ids) for n, e in enumerate(postings)],
    )
    policy = TargetPolicy(["json"], allow_private_hosts=True)
    users = AppriseNotifier(policy, 1, 5)
    ctx = ApiContext(
        store=store,
        registry=SubscriptionRegistry(store, policy, LimitSettings(previews_per_minute=1e9)),
        links=UnsubscribeLinks(b"s", "http://jobwire.test"),
        notifier=MailRouting(users, None),
        operator_key=None,
        kafka_connected=lambda: True,
    )
    transport = httpx.ASGITransport(app=create_api(ctx))
    session = await store.web_sessions.start(user.id, timedelta(hours=1))
    async with httpx.AsyncClient(transport=transport, base_url="http://jobwire.test") as client:
        client.cookies.set("jobwire_session", session, domain="jobwire.test")
        employer, city = rng.choice(world.employers), rng.choice(world.cities)
        home = await client.get("/")
        token = re.search(r'name="csrf" value="([^"]+)"', home.text)
        assert token
        asks = {
            "GET / (sign-up, newest events)": lambda: client.get("/"),
            "GET /preview employer": lambda: client.get(
                "/preview", params={"employers": employer, "kinds": ["posting", "article"]}
            ),
            "GET /preview employer + city": lambda: client.get(
                "/preview",
                params={"employers": employer, "cities": city, "kinds": ["posting", "article"]},
            ),
            "GET /preview city": lambda: client.get(
                "/preview", params={"cities": city, "kinds": ["posting", "article"]}
            ),
            "POST /signup (preview, no JS)": lambda: client.post(
                "/signup",
                data={
                    "csrf": token[1],
                    "action": "preview",
                    "employers": employer,
                    "kinds": "posting",
                },
            ),
            "GET /manage (20 alerts, 500 sent)": lambda: client.get("/manage"),
            "GET /manage/subscriptions/ID": lambda: client.get(
                f"/manage/subscriptions/{subs[0].id}"
            ),
        }
        print(f"  {count:,} events; 20 subscriptions, 500 alerts; {repeat} asks each")
        print(f"  {'page':<36} {'median':>9} {'slowest':>9}")
        for name, ask in asks.items():
            median, slowest, status = await timed(ask, repeat)
            assert status == 200, (name, status)
            print(f"  {name:<36} {median * 1000:>7.1f}ms {slowest * 1000:>7.1f}ms")
    users.close()
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.repeat))


if __name__ == "__main__":
    main()
