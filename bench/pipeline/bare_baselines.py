"""The pipeline benchmark's baselines, each run in a process of its own like jobwire is.

    python bench/pipeline/bare_baselines.py consumer BOOTSTRAP TOPIC COUNT
    python bench/pipeline/bare_baselines.py apprise URL CONCURRENCY SECONDS

``consumer``: a bare aiokafka consumer (its own group, from the earliest offset, the client's
default fetch settings, values left as bytes) reads COUNT messages of TOPIC: the most any
consumer in Python gets out of this broker on this machine, the limit of jobwire's ingest.

``apprise``: CONCURRENCY threads send alerts through Apprise to URL for SECONDS, a fresh
Apprise object per alert (a reused one throttles repeated sends to one target): stock Apprise
as an application would call it, a new connection per alert. jobwire does better than this
(service/delivery/send/keepalive.py: plugins reused, connections kept alive), so the "of Apprise"
column can pass 100%; it says what jobwire adds over calling Apprise plainly. Each alert has
the size of one of jobwire's posting alerts.

Each prints one JSON object on stdout: ``{"per_s": ..., "count": ..., "seconds": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import uuid

TITLE = "New job: Store associate {n} bt{t} at Fanone 17, Portland"
BODY = (
    "Employer: Fanone 17\nTitle: Store associate {n}\nCity: Portland\nContract: Permanent\n"
    "Link: https://jobs.example.com/bench-{n}\n\n--\n"
    "You get this because of your jobwire subscription 'bench'.\n"
    "Unsubscribe: http://127.0.0.1:8080/unsubscribe/bench-token-{n}"
)


async def consume(bootstrap: str, topic: str, count: int) -> dict[str, float]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bare-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        got = first = 0
        started = time.perf_counter()
        while got < count:
            batch = await consumer.getmany(timeout_ms=1000)
            got += sum(len(records) for records in batch.values())
            if first == 0 and got:
                # From the first batch on: joining the group and the first fetch are not reading.
                first, started = got, time.perf_counter()
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {"per_s": (got - first) / elapsed, "count": got - first, "seconds": elapsed}


def send_through_apprise(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    import apprise

    sent = [0] * concurrency
    failed = [0] * concurrency
    deadline = time.perf_counter() + seconds

    def sender(slot: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            notifier = apprise.Apprise()
            notifier.add(url)
            ok = notifier.notify(
                title=TITLE.format(n=n, t=time.time_ns()),
                body=BODY.format(n=n),
                body_format=apprise.NotifyFormat.TEXT,
            )
            if ok:
                sent[slot] += 1
            else:
                failed[slot] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=sender, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if sum(failed):
        raise SystemExit(f"{sum(failed)} of {sum(sent) + sum(failed)} Apprise sends failed")
    return {"per_s": sum(sent) / elapsed, "count": sum(sent), "seconds": elapsed}


def main(argv: list[str]) -> None:
    match argv:
        case ["consumer", bootstrap, topic, count]:
            result = asyncio.run(consume(bootstrap, topic, int(count)))
        case ["apprise", url, concurrency, seconds]:
            result = send_through_apprise(url, int(concurrency), float(seconds))
        case _:
            raise SystemExit(__doc__)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
