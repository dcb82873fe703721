"""Full garbage collections in jobwire's processes: how long they stop everything, before and
after start-up's objects are set aside (service/interpreter.py).

    python bench/bench_gc_pause.py [--rounds 5] [--sends 1000] [--requests 600]

CPython's full collection (generation 2) stops the whole process - the event loop, every
alert in flight - while it walks every container object it tracks. It runs on its own when
enough new long-lived objects have piled up. This measures one full collection:

1. in a sending process, built as `service/delivery/send/senders.py: _serve` builds it: at
   start-up's end (the baseline, measured in the same run), then after `interpreter.settle()` and
   `--sends` alerts to 100 `json://` targets on a loopback server (so what sending builds and
   keeps - the plugins, sessions, connections - is walked too);
2. in the service's process: a real `Service` (SQLite store, its API, its two sending
   processes, its Kafka consumer trying a broker that is not there) once it is ready, then
   after `interpreter.settle()` and `--requests` requests to its API (health, the page, the schema).

The median of `--rounds` collections each; figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import (
    ApiSettings,
    KafkaSettings,
    Settings,
    StoreSettings,
    TargetSettings,
    TemplateSettings,
)
from service import interpreter

Figure = tuple[float, int]
Figures = tuple[Figure, Figure, int]


def full_collections(rounds: int) -> Figure:
    """The median time of a full collection (ms), and the objects it walks."""
    gc.collect()  # what start-up left as garbage goes first: it is not the walk's cost
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), len(gc.get_objects())


async def in_the_service(rounds: int, requests: int) -> Figures:
    import httpx

    from service.app import Service  # imported here: the child below need not import it
    from service.logs import configure_logging

    # The consumer's retries against the absent broker would fill the figures' screen.
    configure_logging("console", "ERROR", stream=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),
            store=StoreSettings(url=f"sqlite+aiosqlite:///{tmp}/jobwire.db"),
            api=ApiSettings(port=0),
        )
        service = Service(settings)
        stop = asyncio.Event()
        running = asyncio.create_task(service.run(stop))
        await asyncio.wait_for(service.ready.wait(), 60)
        await asyncio.sleep(1.0)  # the consumer's first attempts, the sending processes up
        try:
            before = full_collections(rounds)
            set_aside = interpreter.settle()
            async with httpx.AsyncClient(base_url=service.api_url) as client:
                for n in range(requests):
                    await client.get(("/healthz", "/", "/openapi.json")[n % 3])
            after = full_collections(rounds)
            gc.unfreeze()
            return before, after, set_aside
        finally:
            stop.set()
            await running


def in_a_sender(rounds: int, sends: int, answer: multiprocessing.connection.Connection) -> None:
    from service.delivery.render import Message
    from service.delivery.send.senders import equip

    hook = _loopback_hook()
    # What `_serve` has built when it settles; what the sends build comes after.
    notifier, _ = equip(TargetSettings(allow_private_hosts=True), TemplateSettings(), 4)
    before = full_collections(rounds)
    set_aside = interpreter.settle()
    for n in range(sends):
        notifier.send_blocking(f"json://{hook}/{n % 100}", Message(f"posting {n}", "body"))
    after = full_collections(rounds)
    answer.send((before, after, set_aside))


def _loopback_hook() -> str:
    """A keep-alive HTTP server on loopback that takes every POST."""

    class Hook(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"127.0.0.1:{server.server_address[1]}"


def show(where: str, after_label: str, figures: Figures) -> None:
    (before_ms, before_n), (after_ms, after_n), set_aside = figures
    print(where)
    print(
        f"  start-up's end (baseline): {before_ms:6.1f} ms a full collection, {before_n:,} walked"
    )
    print(f"  {after_label:<27}{after_ms:6.1f} ms a full collection, {after_n:,} walked")
    print(f"  => {before_ms / max(after_ms, 1e-3):.0f}x shorter; {set_aside:,} objects set aside")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=5, help="full collections measured each way (5)"
    )
    parser.add_argument(
        "--sends", type=int, default=1000, help="alerts a sending process sends after (1000)"
    )
    parser.add_argument(
        "--requests", type=int, default=600, help="API requests the service answers after (600)"
    )
    args = parser.parse_args()
    rounds = args.rounds

    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=in_a_sender, args=(rounds, args.sends, theirs)
    )
    child.start()
    sender = ours.recv()
    child.join()
    service = asyncio.run(in_the_service(rounds, args.requests))
    show("a sending process", f"then, {args.sends:,} sends on:", sender)
    show(
        "the service's process (consumer, worker, API)",
        f"then, {args.requests:,} requests on:",
        service,
    )


if __name__ == "__main__":
    main()
