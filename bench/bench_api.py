"""API throughput over real HTTP: uvicorn, the registry and the store, against a bare route.

    python bench/bench_api.py [--seconds 3] [--clients 8] [--store URL] [--servers N]

The server runs in a process of its own (one core), logging JSON at INFO to /dev/null as
`jobwire run` would to its log collector; the clients run in this process, on kept connections
that cost about 50 µs of CPU a request (bench/pipeline/http_client.py: httpx's 0.9 ms would be
the bound). The baseline is `GET /healthz` on the same server in the same run: the cost of
HTTP, uvicorn and FastAPI alone. The other rows add authentication (a key lookup in the
store), validation, the target policy and a store write or read, so their ratio to the
baseline, and the server's CPU per request, say what jobwire's own work costs. Figures are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvloop
from pipeline.http_client import Answer, Connections
from pipeline.processes import cpu_seconds

from config.settings import LimitSettings
from service import interpreter
from service.accounts import add_user
from service.delivery import AppriseNotifier
from service.logs import configure_logging
from service.registry import SubscriptionRegistry
from service.store import Store
from service.targets import TargetPolicy
from service.unsubscribe import UnsubscribeLinks
from service.web import ApiContext, bind, create_api, serve


@dataclass
class Server:
    """One API server process, its kept connections and its user's key."""

    pid: int
    connections: Connections
    headers: dict[str, str]
    ids: list[str] = field(default_factory=list)  # its user's subscriptions, once listed


Request = Callable[[Server, int], Awaitable[Answer]]


async def measure(
    servers: list[Server], request: Request, seconds: float, clients: int
) -> tuple[float, float, float, float]:
    """Requests per second, median latency (ms), and the servers' and this process's CPU per
    request (ms), with `clients` concurrent callers, each kept to one server."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def caller(server: Server) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await request(server, next(counter))
            if response.status_code >= 400:
                raise SystemExit(f"unexpected {response.status_code}: {response.text}")
            latencies.append(time.perf_counter() - started)

    pids = [server.pid for server in servers]
    server_cpu, own_cpu = cpu_seconds(pids), time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(caller(servers[k % len(servers)]) for k in range(clients)))
    elapsed = time.perf_counter() - started
    count = len(latencies)
    return (
        count / elapsed,
        statistics.median(latencies) * 1000,
        (cpu_seconds(pids) - server_cpu) / count * 1000,
        (time.process_time() - own_cpu) / count * 1000,
    )


def run_server(store_url: str, key_queue: multiprocessing.Queue[tuple[str, str]]) -> None:
    """The API as `jobwire run` serves it, in this (child) process until terminated: on
    uvloop, with the interpreter set up as `run_service` sets it (service/app.py)."""
    with open(os.devnull, "w") as sink:
        configure_logging("json", "INFO", stream=sink)
        interpreter.hand_over_promptly()
        uvloop.run(_serve(store_url, key_queue))


async def _serve(store_url: str, key_queue: multiprocessing.Queue[tuple[str, str]]) -> None:
    store = await Store.open(store_url)
    created = await add_user(store, f"bench-{time.time_ns()}")
    assert created is not None
    policy = TargetPolicy(["slack", "mailtos"])
    api = create_api(
        ApiContext(
            store=store,
            registry=SubscriptionRegistry(
                store,
                policy,
                # jobwire's own limits (600 requests a minute per key) would measure themselves.
                LimitSettings(subscriptions_per_user=10**9, requests_per_minute=10**9),
            ),
            links=UnsubscribeLinks(b"bench", "http://127.0.0.1"),
            notifier=AppriseNotifier(policy, concurrency=2, timeout_s=5),
            operator_key=None,
            kafka_connected=lambda: True,
        )
    )
    sock = bind("127.0.0.1", 0)
    interpreter.settle()  # start-up's objects set aside, as `jobwire run` does once ready
    key_queue.put((f"http://127.0.0.1:{sock.getsockname()[1]}", created[1]))
    await serve(api, sock, asyncio.Event())


async def main(seconds: float, clients: int, store_url: str | None, count: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="jobwire-bench-api-"))
    store_url = store_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    key_queue: multiprocessing.Queue[tuple[str, str]] = multiprocessing.Queue()
    processes: list[multiprocessing.Process] = []
    started: list[tuple[int, str, str]] = []
    for _ in range(count):  # one after another: the first one migrates a fresh store
        process = multiprocessing.Process(
            target=run_server, args=(store_url, key_queue), daemon=True
        )
        process.start()
        processes.append(process)
        url, key = key_queue.get(timeout=60)
        assert process.pid is not None
        started.append((process.pid, url, key))

    async def healthz(server: Server, _: int) -> Answer:
        return await server.connections.request("GET", "/healthz")

    async def create(server: Server, n: int) -> Answer:
        body = {
            "name": f"bench {n}",
            "employers": [f"Employer {n % 3000}"],
            "cities": ["Portland"],
            "notify": ["slack://TokenA/TokenB/TokenC/#jobs"],
        }
        return await server.connections.request("POST", "/subscriptions", server.headers, body)

    async def read_one(server: Server, n: int) -> Answer:
        path = f"/subscriptions/{server.ids[n % len(server.ids)]}"
        return await server.connections.request("GET", path, server.headers)

    async def pause(server: Server, n: int) -> Answer:
        body = {"active": n % 2 == 0}
        path = f"/subscriptions/{server.ids[n % len(server.ids)]}"
        return await server.connections.request("PATCH", path, server.headers, body)

    servers: list[Server] = []
    async with contextlib.AsyncExitStack() as stack:
        for k, (pid, url, key) in enumerate(started):
            share = len(range(k, clients, count))  # the callers kept to this server
            connections = await stack.enter_async_context(Connections(url, max(share, 1)))
            servers.append(Server(pid, connections, {"Authorization": f"Bearer {key}"}))
        rows = [("GET /healthz (baseline)", *await measure(servers, healthz, seconds, clients))]
        rows.append(("POST /subscriptions", *await measure(servers, create, seconds, clients)))
        for server in servers:
            listed = await server.connections.request("GET", "/subscriptions", server.headers)
            server.ids.extend(sub["id"] for sub in listed.json())
        rows.append(
            ("GET /subscriptions/{id}", *await measure(servers, read_one, seconds, clients))
        )
        rows.append(("PATCH /subscriptions/{id}", *await measure(servers, pause, seconds, clients)))
    for process in processes:
        process.terminate()
        process.join()

    baseline = rows[0][1]
    dialect = store_url.split("+", 1)[0].split(":", 1)[0]
    print(
        f"store: {dialect}; {count} server process{'es' if count > 1 else ''}; "
        f"{clients} concurrent clients; {seconds:g} s each"
    )
    print(
        f"{'request':<28} {'req/s':>8} {'median ms':>10} {'vs baseline':>12}"
        f" {'server CPU ms':>14} {'client CPU ms':>14}"
    )
    for name, rate, median, server_ms, client_ms in rows:
        print(
            f"{name:<28} {rate:>8.0f} {median:>10.1f} {rate / baseline:>11.2f}x"
            f" {server_ms:>14.2f} {client_ms:>14.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="How long each row runs.")
    parser.add_argument("--clients", type=int, default=8, help="Concurrent callers.")
    parser.add_argument("--store", default=None, help="Store URL (default: a fresh SQLite file).")
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="API server processes on the one store, the clients shared out among them.",
    )
    args = parser.parse_args()
    if args.servers < 1 or args.clients < args.servers:
        parser.error("--servers must be at least 1 and at most --clients")
    asyncio.run(main(args.seconds, args.clients, args.store, args.servers))
