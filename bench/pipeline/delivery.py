"""Delivery: a full ledger, then what arrives at the sink per second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .figures import Figure
from .processes import CpuMeter, say, stop_process
from .profiling import Profiler
from .stack import (
    DELIVERY_SUBSCRIPTIONS,
    STALL_S,
    Jobwire,
    Stack,
    Topics,
    posting,
    preload,
    set_up,
    sized,
)

# The first second of sending (connections, Apprise's plugins loading) is not counted.
DELIVERY_WARMUP_S = 1.0
# Alerts the parked jobwire may have sent while the ledger was filled.
SENT_WHILE_FILLING = 5


async def fill_ledger(
    stack: Stack, row: str, specs: list[dict[str, Any]], employer: Callable[[int], str], count: int
) -> tuple[str, Topics]:
    """A store whose ledger holds `count` pending alerts: ingested by a parked jobwire."""
    store_url, topics = await set_up(stack, row, specs)
    await preload(stack, topics.postings, (posting(row, n, employer(n)) for n in range(count)))
    stack.sink.hold()
    jobwire = stack.start_jobwire(f"{row}-fill", stack.parked_env(store_url, topics))
    started = time.perf_counter()
    try:
        while (done := await stack.committed(topics)) < count:
            jobwire.alive()
            if time.perf_counter() - started > STALL_S * 5:
                raise RuntimeError(f"jobwire ingested only {done} of {count} events")
            await asyncio.sleep(0.2)
    finally:
        await stack.stop_parked(jobwire)
    say(f"    ledger filled with {count:,} alerts in {time.perf_counter() - started:.1f} s")
    stack.sink.take()  # what the parked jobwire sent is not part of the figure
    return store_url, topics


async def delivery_row(stack: Stack, row: str, kind: str, concurrency: int) -> Figure:
    """A full ledger, then alerts arriving at the sink per second."""
    opts = stack.options
    if kind == "json":
        url: Callable[[int], str] = lambda k: stack.sink.json_url(f"hook/{k}")  # noqa: E731
        label = f"webhook alerts delivered (json://), concurrency {concurrency}"
        count = 600 * max(4, int(opts.seconds))  # ~3x the "before" (176/s)
    else:
        url = stack.sink.mail_url
        label = f"emails delivered to a loopback SMTP server, concurrency {concurrency}"
        count = 300 * max(4, int(opts.seconds))
    specs = [
        {"name": f"{row} #{k}", "employers": [f"Deliver {k}"], "notify": [url(k)]}
        for k in range(DELIVERY_SUBSCRIPTIONS)
    ]
    for attempt in (1, 2):
        store_url, topics = await fill_ledger(
            stack, row, specs, lambda n: f"Deliver {n % DELIVERY_SUBSCRIPTIONS}", count
        )
        jobwire = stack.start_jobwire(
            row, stack.env(store_url, topics, delivery__concurrency=str(concurrency))
        )
        meter = stack.cpu_meter(jobwire)
        profiler = Profiler(stack, row)
        try:
            rate, counted, elapsed, exhausted = await watch_arrivals(
                stack, jobwire, count, opts.seconds, meter, profiler
            )
            cpu = meter.stop()
            profile = await profiler.stop()
        finally:
            await stop_process(jobwire.proc)
        stack.sink.take()
        if not (exhausted and elapsed < opts.seconds / 2) or attempt == 2:
            break
        say(f"    the {count:,} alerts lasted only {elapsed:.1f} s: again with more")
        count = sized(rate * (opts.seconds + DELIVERY_WARMUP_S) * 1.3, count)
    what = "alerts" if kind == "json" else "emails"
    note = f"{counted:,} {what} over {elapsed:.1f} s, of {count:,} in the ledger"
    return Figure(row, label, rate, f"{what}/s", note, cpu, None, profile)


async def watch_arrivals(
    stack: Stack,
    jobwire: Jobwire,
    total: int,
    window: float,
    meter: CpuMeter,
    profiler: Profiler,
) -> tuple[float, int, float, bool]:
    """(alerts/s, alerts, seconds, whether they ran out): arrivals over `window`, from
    DELIVERY_WARMUP_S after the first one, or until the ledger is empty."""
    total -= SENT_WHILE_FILLING
    arrivals: list[int] = []
    start_ns = 0
    measuring = False
    waited = time.perf_counter()
    while True:
        jobwire.alive()
        arrivals += [a.at_ns for a in stack.sink.take()]
        now_ns = time.time_ns()
        if arrivals and not start_ns:
            start_ns = arrivals[0] + int(DELIVERY_WARMUP_S * 1e9)
        if start_ns and not measuring and now_ns >= start_ns:
            measuring = True
            meter.start()
            profiler.start(jobwire.proc.pid)
        if measuring and (now_ns >= start_ns + window * 1e9 or len(arrivals) >= total):
            break
        if not arrivals and time.perf_counter() - waited > STALL_S:
            raise RuntimeError(f"nothing arrived at the sink within {STALL_S:g} s")
        await asyncio.sleep(0.1)
    end_ns = min(now_ns, start_ns + int(window * 1e9))
    exhausted = len(arrivals) >= total
    if exhausted:
        end_ns = arrivals[-1]
        if end_ns <= start_ns:  # all were sent within the warm-up: count them all
            start_ns = arrivals[0]
    counted = sum(1 for at in arrivals if start_ns <= at <= end_ns)
    elapsed = max(1e-9, (end_ns - start_ns) / 1e9)
    return counted / elapsed, counted, elapsed, exhausted
