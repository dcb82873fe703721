"""The API: subscriptions created per second with a user's key."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

from .figures import Figure
from .http_client import Connections
from .processes import stop_process
from .profiling import Profiler
from .stack import Stack

API_CLIENTS = 8
# API processes answering (JOBWIRE_API__PROCESSES): one a core of this 2-core machine, as an
# operator who wants the API's throughput would set it (jobwire's default is 1; `--set
# api__processes=1` measures that). A build from before the setting ignores it: one process.
API_PROCESSES = 2


async def api_row(stack: Stack) -> Figure:
    """POST /subscriptions with a user's key from several keep-alive clients (lean ones:
    httpx's CPU a request would cap the row near 1,100 a second; see http_client.py)."""
    opts = stack.options
    store_url = await stack.new_store("api")
    topics = await stack.new_topics("api")
    env = stack.env(store_url, topics, api__processes=str(API_PROCESSES))
    added = await asyncio.to_thread(
        subprocess.run,
        [str(stack.jobwire), "users", "add", f"bench-{uuid.uuid4().hex[:8]}@example.com"],
        env=env,
        cwd=opts.workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode != 0:
        raise RuntimeError(f"jobwire users add failed: {added.stderr.strip()}")
    key = added.stdout.strip().splitlines()[-1]
    jobwire = stack.start_jobwire("api", env)
    meter = stack.cpu_meter(jobwire)
    profiler = Profiler(stack, "api")
    try:
        url = await jobwire.api_url()
        headers = {"Authorization": f"Bearer {key}"}
        created = 0
        counter = iter(range(10**9))

        async def create_one(http: Connections) -> None:
            n = next(counter)
            body = {
                "name": f"bench {n}",
                "employers": [f"Employer {n % 3000}"],
                "cities": ["Portland"],
                "notify": ["slack://TokenA/TokenB/TokenC/#jobs"],
            }
            response = await http.request("POST", "/subscriptions", headers, body)
            if response.status_code != 201:
                raise RuntimeError(
                    f"POST /subscriptions answered {response.status_code}: {response.text}"
                )

        async def client(http: Connections, deadline: float) -> None:
            nonlocal created
            while time.perf_counter() < deadline:
                await create_one(http)
                created += 1

        async with Connections(url, API_CLIENTS) as http:
            # One round first, so connections and the key lookup are warm.
            await asyncio.gather(*(create_one(http) for _ in range(API_CLIENTS)))
            meter.start()
            profiler.start(jobwire.proc.pid)
            started = time.perf_counter()
            await asyncio.gather(
                *(client(http, started + opts.seconds) for _ in range(API_CLIENTS))
            )
            elapsed = time.perf_counter() - started
            cpu = meter.stop()
            profile = await profiler.stop()
    finally:
        await stop_process(jobwire.proc)
    note = f"{created:,} created over {elapsed:.1f} s by {API_CLIENTS} clients"
    return Figure(
        "api",
        "subscriptions created through the API",
        created / elapsed,
        "subs/s",
        note,
        cpu,
        None,
        profile,
    )
