"""The baselines, measured in the same run: a bare consumer, bare Apprise, the sink alone."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

from .figures import Figure
from .processes import CpuMeter, say
from .stack import HERE, Stack, posting, preload


async def run_baseline(stack: Stack, args: list[str]) -> dict[str, float]:
    proc = stack.children.spawn(
        [sys.executable, str(HERE / "bare_baselines.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = await asyncio.to_thread(proc.communicate)
    if proc.returncode != 0:
        raise RuntimeError(f"baseline {args[0]} failed: {err.strip()[-2000:]}")
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


async def consumer_baseline(stack: Stack) -> Figure:
    """A bare aiokafka consumer over the fan-out 1 row's topic (or one preloaded like it)."""
    if "ingest1" in stack.preloaded:
        topic, count = stack.preloaded["ingest1"]
    else:
        topic, count = (await stack.new_topics("consumer")).postings, 100_000
        events = (posting("consumer", n, f"Fanone {n % 1000}") for n in range(count))
        await preload(stack, topic, events)
    result = await run_baseline(stack, ["consumer", stack.bootstrap, topic, str(count)])
    return Figure(
        "consumer",
        "bare aiokafka consumer, same topic (the limit)",
        result["per_s"],
        "events/s",
        f"{int(result['count']):,} events over {result['seconds']:.2f} s",
    )


async def apprise_baselines(stack: Stack, rows: list[str]) -> dict[str, Figure]:
    """Bare Apprise to the same sink, at each concurrency a delivery row uses."""
    seconds = stack.options.seconds / 2
    wanted = []
    if "webhook8" in rows:
        wanted.append(("webhook8", "json", 8))
    if "webhook32" in rows:
        wanted.append(("webhook32", "json", 32))
    if "email" in rows:
        wanted.append(("email", "mail", 8))
    figures: dict[str, Figure] = {}
    for row, kind, concurrency in wanted:
        url = stack.sink.json_url("bare") if kind == "json" else stack.sink.mail_url(0)
        meter = CpuMeter({"sink": lambda: [stack.sink.proc.pid]})
        meter.start()
        result = await run_baseline(stack, ["apprise", url, str(concurrency), str(seconds)])
        cpu = meter.stop()
        stack.sink.take()
        what = "json:// webhooks" if kind == "json" else "emails"
        figures[row] = Figure(
            f"apprise-{row}",
            f"bare Apprise, {what}, {concurrency} threads",
            result["per_s"],
            f"{'alerts' if kind == 'json' else 'emails'}/s",
            f"{int(result['count']):,} over {result['seconds']:.1f} s",
            cpu,
        )
        say(f"  {figures[row].label}: {result['per_s']:,.0f}/s (sink cpu {cpu['sink']:.0f}%)")
    return figures


async def sink_capacity(stack: Stack) -> str:
    """How many requests the sink answers when nothing else is the bound (a new connection
    per request, as Apprise makes them), and its CPU meanwhile."""
    seconds = 3.0
    body = b'{"title": "New job: bt1 capacity probe"}'
    request = (
        b"POST /capacity HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            reader, writer = await asyncio.open_connection("127.0.0.1", stack.sink.http_port)
            writer.write(request)
            await reader.read()
            writer.close()
            done += 1

    meter = CpuMeter({"sink": lambda: [stack.sink.proc.pid], "client": lambda: [os.getpid()]})
    meter.start()
    await asyncio.gather(*(client() for _ in range(32)))
    cpu = meter.stop()
    stack.sink.take()
    return (
        f"{done / seconds:,.0f} requests/s, a new connection each (sink cpu {cpu['sink']:.0f}%, "
        f"the load generator's {cpu['client']:.0f}%)"
    )
