"""Ingest: events preloaded, jobwire started with delivery parked, committed offsets per second."""

from __future__ import annotations

import asyncio
import time

from .figures import Figure
from .processes import CpuMeter, say
from .profiling import Profiler
from .stack import STALL_S, Jobwire, Stack, Topics, posting, preload, set_up, sized

FANOUT1_SUBSCRIPTIONS = 1000
# Events preloaded per second of the window, sized to each row's goal (50,000 events/s;
# 200,000 rows/s at fan-out 100) with room, so the load lasts the whole window. At 25,000 a
# second, SQLite's fan-out 1 ran out after 6.4 s of its 12, and the rate of a store's first
# seconds was taken for the rate of twelve: over the whole window the store's tables and
# indexes grow further, and the rate with them falls (PostgreSQL 34,000-39,000 events/s over
# the first 8 s, 31,000-34,500 over 12).
FANOUT1_PER_SECOND = 60_000
FANOUT100_PER_SECOND = 2_500
# A load that lasted less than this share of the window is preloaded again, larger.
FULL_WINDOW = 0.75
# Commits that must be seen after the first one: a fan-out 100 batch takes seconds.
MIN_COMMITS = 3


async def ingest_row(stack: Stack, row: str, fanout: int) -> Figure:
    """Events preloaded, jobwire started with delivery parked; committed offsets per second."""
    opts = stack.options
    if fanout == 1:
        specs = [
            {
                "name": f"fan-out 1 #{k}",
                "employers": [f"Fanone {k}"],
                "notify": [stack.sink.json_url(f"park/{k}")],
            }
            for k in range(FANOUT1_SUBSCRIPTIONS)
        ]

        def employer(n: int) -> str:
            return f"Fanone {n % FANOUT1_SUBSCRIPTIONS}"

        count = FANOUT1_PER_SECOND * max(4, int(opts.seconds))
    else:
        specs = [
            {
                "name": f"fan-out {fanout} #{k}",
                "employers": ["Fanhundred"],
                "notify": [stack.sink.json_url(f"park/{k}")],
            }
            for k in range(fanout)
        ]

        def employer(n: int) -> str:
            return "Fanhundred"

        count = FANOUT100_PER_SECOND * max(4, int(opts.seconds))

    for attempt in (1, 2):
        store_url, topics = await set_up(stack, row, specs)
        await preload(stack, topics.postings, (posting(row, n, employer(n)) for n in range(count)))
        stack.preloaded[row] = (topics.postings, count)
        stack.sink.hold()
        jobwire = stack.start_jobwire(row, stack.parked_env(store_url, topics))
        meter = stack.cpu_meter(jobwire)
        profiler = Profiler(stack, row)
        try:
            rate, counted, elapsed, exhausted = await watch_commits(
                stack, jobwire, topics, count, opts.seconds, meter, profiler
            )
            cpu = meter.stop()
            profile = await profiler.stop()
        finally:
            await stack.stop_parked(jobwire)
        if attempt == 2 or not (exhausted and elapsed < opts.seconds * FULL_WINDOW):
            break
        say(f"    the {count:,} events lasted only {elapsed:.1f} s: again, with more")
        count = sized(rate * opts.seconds * 1.3, count)
    seen = jobwire.fanout()
    note = f"{counted:,} events over {elapsed:.1f} s; fan-out seen in jobwire's log: " + (
        f"{seen:.2f}" if seen is not None else "n/a"
    )
    if fanout == 1:
        return Figure(row, "events ingested, fan-out 1", rate, "events/s", note, cpu, None, profile)
    return Figure(
        row,
        f"matches recorded in the ledger, fan-out {fanout}",
        rate * fanout,
        "rows/s",
        f"{rate:,.0f} events/s; " + note,
        cpu,
        None,
        profile,
    )


async def watch_commits(
    stack: Stack,
    jobwire: Jobwire,
    topics: Topics,
    total: int,
    window: float,
    meter: CpuMeter,
    profiler: Profiler,
) -> tuple[float, int, float, bool]:
    """(events/s, events, seconds, whether they ran out), from the first commit seen to the
    last one seen once `window` has passed (and at least MIN_COMMITS more came), or to the
    commit of the last event. From commit to commit, so a batch that takes seconds (fan-out
    100) is counted whole or not at all."""
    first_at = last_at = 0.0
    first = last = commits = 0
    waited = time.perf_counter()
    while True:
        jobwire.alive()
        done = await stack.committed(topics)
        now = time.perf_counter()
        if done != last:
            if not first_at:
                first_at, first = now, done
                meter.start()
                profiler.start(jobwire.proc.pid)
            else:
                commits += 1
            last, last_at = done, now
        if done >= total or (commits >= MIN_COMMITS and now - first_at >= window):
            break
        if now - (last_at or waited) > STALL_S:
            raise RuntimeError(f"jobwire committed nothing for {STALL_S:g} s ({done}/{total})")
        await asyncio.sleep(0.05)
    elapsed = last_at - first_at
    if not commits:
        raise RuntimeError(f"jobwire committed all {total} events at once: preload more")
    return (last - first) / elapsed, last - first, elapsed, done >= total
