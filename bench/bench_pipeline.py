"""End to end: the real `jobwire run` between a real Kafka and real sinks, SQLite then PostgreSQL.

    python bench/bench_pipeline.py [--stores sqlite,postgresql] [--rows ingest1,api,...]
                                   [--seconds 12] [--quick] [--repeat N] [--profile]
                                   [--jobwire PATH] [--keep]

About 6 minutes on 2 cores with the defaults (both stores, every row, one round).

Every figure is measured in one run, on one broker, beside the baselines it is compared with:

* Kafka is a single-node broker from devstack/kafka.py; PostgreSQL a throwaway server from
  devstack/postgres.py (both run with durability off, as in the tests). Each row gets a fresh
  store (a new SQLite file or a new PostgreSQL database), its own topics and consumer group.
* jobwire is a black box: `jobwire run` (and `jobwire users add`) as subprocesses, configured
  by JOBWIRE_* variables, fed by a plain aiokafka producer, set up through its HTTP API, and
  observed from outside: the consumer group's committed offsets (ingest) and what arrives at
  the sinks (delivery, latency). So the benchmark keeps working while the internals change,
  and `--jobwire` points it at another build to compare.
* The sinks (bench/pipeline/loopback_sink.py: HTTP and SMTP) run in a process of their own,
  as do the baselines (bench/pipeline/bare_baselines.py): a bare aiokafka consumer reading a
  row's topic, the limit of ingest, and bare Apprise sending to the same sink, the limit of
  delivery. The sink's own capacity is measured first.

The rows:

ingest1, ingest100  Events preloaded into the topic, then jobwire started with delivery parked
                    (the sink holds its one send open), so the figure is ingest alone: decode,
                    match, write the ledger, commit. Measured as the rate at which the group's
                    committed offsets advance, from commit to commit, for --seconds. Fan-out
                    1: 1,000 subscriptions, each event matches one; fan-out 100: every event
                    matches 100 subscriptions (rows/s = events/s x 100).
webhook8, webhook32 The ledger filled first (a parked jobwire ingests the events, then stops),
email               then a fresh jobwire delivers them: alerts arriving at the sink per second
                    over --seconds, after a 1 s start. 100 subscriptions, a target each,
                    (json:// at JOBWIRE_DELIVERY__CONCURRENCY 8 and 32; mailto:// at 8).
latency100,         Events published at a fixed rate for --seconds, each carrying its publish
latency1000         time; the sink notes when its alert arrives. Percentiles of publish ->
                    alert received, and whether jobwire keeps up (if not, the percentiles
                    are of what arrived, and the table says so). The same rate is published
                    for 3 s first, straight after start-up: that cold start (the broker's
                    and the store's first work on new topics and tables, each target's
                    first connection) is printed apart, so the figure is the steady state.
api                 POST /subscriptions for --seconds from 8 concurrent keep-alive clients
                    with a user's key from `jobwire users add`.

When a row's preloaded events or alerts run out before half its window, it is run again with
enough for the window at the rate seen, so the sizes follow jobwire as it gets faster.
Each figure is printed as a share of the bare consumer's, delivery rows also of bare
Apprise's, with the CPU that jobwire, the sink, Kafka, PostgreSQL and everything else on the
machine ("others") used meanwhile: a sink near 100% would be the bound, and "others" is the
noise of a shared machine. `--repeat 3` runs every row three times, minutes apart, and shows
the median and the range. Figures are printed, never asserted.

`--profile` runs py-spy (installed into this virtualenv on first use, pinned) against jobwire
during each row's window, writes a speedscope file per row into the work directory (open it
at https://www.speedscope.app) and prints the functions with the most samples of their own
(see bench/pipeline/profiling.py for what the samples mean).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka.admin import AIOKafkaAdminClient
from pipeline.api import api_row
from pipeline.baselines import apprise_baselines, consumer_baseline, sink_capacity
from pipeline.delivery import delivery_row
from pipeline.figures import ROWS, Figure, compare, median_of, report, table
from pipeline.ingest import ingest_row
from pipeline.latency import latency_row
from pipeline.processes import Children, say
from pipeline.profiling import py_spy
from pipeline.sink import Sink
from pipeline.stack import Options, Stack

from devstack.kafka import KafkaBroker, running_kafka
from devstack.postgres import running_postgres

STORES = ("sqlite", "postgresql")


async def run_store(stack: Stack, rows: list[str]) -> dict[str, Figure]:
    """Every row on one store, `--repeat` times over (all rows, then all again), so that
    repeats of a row are minutes apart; each row's median, with the others as its spread."""
    rounds = []
    for number in range(1, stack.options.repeat + 1):
        stack.round = number
        rounds.append(await run_round(stack, rows))
    return {name: median_of([r[name] for r in rounds if name in r]) for name in rounds[0]}


async def run_round(stack: Stack, rows: list[str]) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    tag = f"[{stack.store}" + (f", round {stack.round}]" if stack.options.repeat > 1 else "]")

    async def row(name: str, what: str, work: Coroutine[Any, Any, Figure]) -> None:
        say(f"{tag} {name}: {what}")
        started = time.perf_counter()
        figure = await work
        figures[name] = figure
        report(figure)
        say(f"    ({time.perf_counter() - started:.0f} s)")

    if "ingest1" in rows:
        await row("ingest1", "events ingested, fan-out 1", ingest_row(stack, "ingest1", 1))
    await row("consumer", "bare aiokafka consumer over the same topic", consumer_baseline(stack))
    if "ingest100" in rows:
        await row("ingest100", "ledger rows, fan-out 100", ingest_row(stack, "ingest100", 100))
    for name, kind, concurrency in (
        ("webhook8", "json", 8),
        ("webhook32", "json", 32),
        ("email", "mail", 8),
    ):
        if name in rows:
            await row(
                name,
                f"{kind} delivery, concurrency {concurrency}",
                delivery_row(stack, name, kind, concurrency),
            )
    for name, rate in (("latency100", 100), ("latency1000", 1000)):
        if name in rows:
            await row(name, f"latency at {rate} events/s", latency_row(stack, name, rate))
    if "api" in rows:
        await row("api", "POST /subscriptions", api_row(stack))
    return figures


def describe(jobwire: Path) -> str:
    """Which jobwire: the commit of the checkout whose virtualenv holds it (an editable
    install, as `make install` makes)."""
    checkout = jobwire.resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(checkout), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{jobwire} (not in a git checkout)"
    return f"{checkout} at {head}" + (" (with uncommitted changes)" if dirty else "")


async def run(options: Options, broker: KafkaBroker, children: Children) -> None:
    sink = Sink(children, options.workdir)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    results: dict[str, dict[str, Figure]] = {}
    try:
        stack = Stack(options, children, broker, sink, admin)
        say(f"sink (pid {sink.proc.pid}): {await sink_capacity(stack)}")
        apprise = await apprise_baselines(stack, options.rows)
        for store in options.stores:
            stack.store = store
            if store == "postgresql":
                say("starting PostgreSQL (devstack/postgres.py)")
                with running_postgres() as server:
                    stack.postgres = server
                    results[store] = await run_store(stack, options.rows)
                    stack.postgres = None
            else:
                results[store] = await run_store(stack, options.rows)
            table(f"{store}: {options.seconds:g} s windows", results[store], apprise)
    finally:
        await admin.close()
        sink.close()
    if apprise:
        say("")
        say("bare Apprise to the same sink (the delivery rows' second baseline)")
        for figure in apprise.values():
            say(f"  {figure.label:<58} {figure.value:>12,.0f} {figure.unit}  ({figure.note})")
    say(f"\njobwire: {describe(options.jobwire)}; {options.seconds:g} s windows")
    for store, figures in results.items():
        table(store, figures, apprise)
    compare(results)
    if options.profile:
        say(f"\nprofiles (speedscope): {options.workdir / 'profiles'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stores", default=",".join(STORES), help="sqlite, postgresql or both, in that order"
    )
    parser.add_argument("--rows", default=",".join(ROWS), help=f"any of {', '.join(ROWS)}")
    parser.add_argument("--seconds", type=float, default=None, help="each row's window (12)")
    parser.add_argument("--quick", action="store_true", help="4 s windows: a smoke run")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of every row; the median is shown (1)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy on jobwire in each row's window"
    )
    parser.add_argument(
        "--jobwire",
        type=Path,
        default=Path(sys.executable).with_name("jobwire"),
        help="the jobwire executable to measure (default: this virtualenv's)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    stores = [s for s in args.stores.split(",") if s]
    rows = [r for r in args.rows.split(",") if r]
    unknown = sorted(set(stores) - set(STORES)) + sorted(set(rows) - set(ROWS))
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)} (stores: {STORES}, rows: {ROWS})")
    if not args.jobwire.is_file():
        parser.error(f"{args.jobwire} is not there: run `make install` or pass --jobwire")
    seconds = args.seconds or (4.0 if args.quick else 12.0)
    workdir = Path(tempfile.mkdtemp(prefix="jobwire-bench-pipeline-"))
    options = Options(
        stores, rows, seconds, max(1, args.repeat), args.profile, args.jobwire, workdir
    )
    if args.profile:
        py_spy()

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    # Explicitly: a shell without job control starts `... &` with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    say(
        f"jobwire pipeline benchmark: {args.jobwire}; {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f}; work directory {workdir}"
    )
    started = time.perf_counter()
    children = Children()
    failed = True
    try:
        say("starting Kafka (devstack/kafka.py)")
        with running_kafka() as broker:
            try:
                asyncio.run(run(options, broker, children))
                failed = False
            finally:
                children.close()
    except KeyboardInterrupt:
        say("interrupted: every process this benchmark started is stopped")
        return 130
    except RuntimeError as exc:  # what the rows raise: jobwire or a helper did not do its part
        say(f"bench_pipeline: {exc}\nevery process it started is stopped; jobwire's logs stay")
        return 1
    finally:
        children.close()
        keep = failed or args.keep or args.profile
        if keep:
            say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    say(
        f"done in {time.perf_counter() - started:.0f} s; load average now "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
