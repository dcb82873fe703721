"""Latency: events published at a fixed rate, each carrying its publish time."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from .figures import Figure, Latency
from .processes import say, stop_process
from .profiling import Profiler
from .sink import Arrival
from .stack import (
    DELIVERY_SUBSCRIPTIONS,
    STALL_S,
    Jobwire,
    Stack,
    Topics,
    posting,
    producer,
    set_up,
)

# Published at the row's rate before the window, measured apart as the cold start: the
# broker's JIT on new topics, the store's first work on new tables, the first connection
# to each target and its plugin in each sending process. Probed per process (CPU sampled
# every 0.5 s), Kafka used 40-55% of a core in a row's first 3-4 s and about 20% after.
START_S = 3.0


async def latency_row(stack: Stack, row: str, rate: int) -> Figure:
    """Publish at `rate`: the first START_S seconds measured apart as the cold start, then
    the window; publish -> alert at the sink, per event."""
    opts = stack.options
    specs = [
        {
            "name": f"{row} #{k}",
            "employers": [f"Latency {k}"],
            "notify": [stack.sink.json_url(f"hook/{k}")],
        }
        for k in range(DELIVERY_SUBSCRIPTIONS)
    ]
    store_url, topics = await set_up(stack, row, specs)
    jobwire = stack.start_jobwire(row, stack.env(store_url, topics))
    meter = stack.cpu_meter(jobwire)
    profiler = Profiler(stack, row)
    try:
        async with producer(stack.bootstrap, linger_ms=0) as prod:
            await warm_up(stack, jobwire, prod, topics, row)
            at_start, sent_at_start = await publish_at(
                stack, prod, topics, f"{row}-start", rate, START_S
            )
            meter.start()
            profiler.start(jobwire.proc.pid)
            start_ns = time.time_ns()
            published, sent_at = await publish_at(stack, prod, topics, row, rate, opts.seconds)
            end_ns = time.time_ns()
            arrivals = await wait_for_rest(stack, jobwire, at_start + published)
            cpu = meter.stop()
            profile = await profiler.stop()
    finally:
        await stop_process(jobwire.proc)
    stack.sink.take()

    latencies = sorted((a.at_ns - a.marker) / 1e6 for a in arrivals if a.marker in sent_at)
    cold = sorted((a.at_ns - a.marker) / 1e6 for a in arrivals if a.marker in sent_at_start)
    in_window = sum(1 for a in arrivals if a.at_ns <= end_ns and a.marker in sent_at)
    # Whether jobwire keeps up: alerts per second in the second half of the publishing, when
    # the pipeline is full (the first half's count would be short by the latency itself).
    half_ns = (start_ns + end_ns) // 2
    delivered = sum(1 for a in arrivals if half_ns <= a.at_ns <= end_ns) / (
        (end_ns - half_ns) / 1e9
    )
    if not latencies:
        raise RuntimeError(f"none of the {published} events of {row} arrived")
    lat = Latency(
        published=published,
        received=len(latencies),
        rate=rate,
        delivered_per_s=delivered,
        behind_at_end=published - in_window,
        unsent=published - len(latencies),
        p50=percentile(latencies, 50),
        p95=percentile(latencies, 95),
        p99=percentile(latencies, 99),
        max=latencies[-1],
        start_s=START_S,
        start_p50=percentile(cold, 50) if cold else float("nan"),
        start_p99=percentile(cold, 99) if cold else float("nan"),
    )
    note = (
        f"alerts arrived at {delivered:,.0f}/s in the second half while {rate:,}/s were "
        f"published; {lat.behind_at_end:,} had not arrived when publishing stopped"
    )
    if lat.falling_behind:
        note += (
            f"; jobwire falls behind: {lat.unsent:,} still unsent after the grace period (the "
            "percentiles are of those that arrived)"
        )
    label = f"publish -> alert received at {rate:,} events/s"
    return Figure(row, label, lat.p99, "ms p99", note, cpu, lat, profile)


async def warm_up(
    stack: Stack, jobwire: Jobwire, prod: AIOKafkaProducer, topics: Topics, row: str
) -> None:
    """Until one alert has gone all the way: the group joined, the targets connected once."""
    started = time.perf_counter()
    n = 0
    while True:
        n += 1
        key, value = posting(f"{row}-warm", n, "Latency 0")
        await prod.send_and_wait(topics.postings, value, key=key)
        for _ in range(10):
            jobwire.alive()
            await asyncio.sleep(0.1)
            if stack.sink.take():
                await asyncio.sleep(0.5)
                stack.sink.take()
                return
        if time.perf_counter() - started > STALL_S:
            raise RuntimeError(f"no warm-up alert arrived within {STALL_S:g} s")


async def publish_at(
    stack: Stack, prod: AIOKafkaProducer, topics: Topics, row: str, rate: int, seconds: float
) -> tuple[int, set[int]]:
    """Publish at a fixed rate, each event with its publish time (ns) as its marker."""
    total = int(rate * seconds)
    sent_at: set[int] = set()
    pending: list[asyncio.Future[Any]] = []
    started = time.perf_counter()
    for n in range(total):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        marker = time.time_ns()
        sent_at.add(marker)
        key, value = posting(row, n, f"Latency {n % DELIVERY_SUBSCRIPTIONS}", marker)
        pending.append(await prod.send(topics.postings, value, key=key))
    await asyncio.gather(*pending)
    late = time.perf_counter() - started - seconds
    if late > 0.5:
        say(f"    (publishing ran {late:.1f} s late: the publisher could not keep the rate)")
    return total, sent_at


async def wait_for_rest(stack: Stack, jobwire: Jobwire, published: int) -> list[Arrival]:
    """What arrives until all have, or nothing new for 3 s, or 10 s passed."""
    arrivals = stack.sink.take()
    started = last_new = time.perf_counter()
    while len(arrivals) < published:
        jobwire.alive()
        await asyncio.sleep(0.1)
        new = stack.sink.take()
        now = time.perf_counter()
        if new:
            arrivals += new
            last_new = now
        if now - last_new > 3 or now - started > 10:
            break
    return arrivals


def percentile(ordered: list[float], q: float) -> float:
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]
