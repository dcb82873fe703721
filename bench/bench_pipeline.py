"""End to end: the real `jobwire run` between a real Kafka and real sinks, SQLite then PostgreSQL.

    python bench/bench_pipeline.py [--stores sqlite,postgresql] [--rows ingest1,api,...]
                                   [--seconds 12] [--quick] [--repeat N] [--profile]
                                   [--jobwire BUILD] [--versus BUILD] [--keep]

About 6 minutes on 2 cores with the defaults (both stores, every row, one round).

Every figure is measured in one run, on one broker, beside the baselines it is compared with:

* Kafka is a single-node broker from devstack/kafka.py; PostgreSQL a throwaway server from
  devstack/postgres.py (both run with durability off, as in the tests). Each row gets a fresh
  store (a new SQLite file or a new PostgreSQL database), its own topics and consumer group.
* jobwire is a black box: `jobwire run` (and `jobwire users add`) as subprocesses, configured
  by JOBWIRE_* variables, fed by a plain aiokafka producer, set up through its HTTP API, and
  observed from outside: the consumer group's committed offsets (ingest) and what arrives at
  the sinks (delivery, latency). So the benchmark keeps working while the internals change,
  and `--jobwire` points it at another build: an executable, or a git revision of this
  checkout (run from a worktree of its own with this virtualenv, bench/pipeline/builds.py).
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
                    with a user's key from `jobwire users add`, answered by 2 API
                    processes (JOBWIRE_API__PROCESSES; jobwire's default is 1).

When a row's preloaded events or alerts run out before half its window, it is run again with
enough for the window at the rate seen, so the sizes follow jobwire as it gets faster.
Each figure is printed as a share of the bare consumer's, delivery rows also of bare
Apprise's, with the CPU that jobwire, the sink, Kafka, PostgreSQL and everything else on the
machine ("others") used meanwhile: a sink near 100% would be the bound, and "others" is the
noise of a shared machine. `--repeat 3` runs every row three times, minutes apart, and shows
the median and the range. Figures are printed, never asserted. `--set
kafka__batch_max_records=500` (repeatable) gives every jobwire a setting other than its
default, to measure a knob.

`--versus BUILD` measures a second build in the same run, on the same broker and sink: each
row of the two one after the other, the one that goes first swapped every round (at least
two), since on this 2-core machine the run that goes first in a pair read 12-23% higher,
whatever its code. It prints every round of both, marked with which went first, their means,
the ratio of the --jobwire build's to the --versus build's (after over before, with
`--versus HEAD~1`), and how much going first was worth in this run:

    python bench/bench_pipeline.py --stores sqlite --rows webhook32 --repeat 4 --versus HEAD~1

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
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka.admin import AIOKafkaAdminClient
from pipeline.api import api_row
from pipeline.baselines import apprise_baselines, consumer_baseline, sink_capacity
from pipeline.builds import Build, build_of, remove_worktrees
from pipeline.delivery import delivery_row
from pipeline.figures import ROWS, Figure, compare, compare_builds, median_of, report, table
from pipeline.ingest import ingest_row
from pipeline.latency import latency_row
from pipeline.processes import Children, say
from pipeline.profiling import py_spy
from pipeline.sink import Sink
from pipeline.stack import Options, Stack, jobwire_settings

from devstack.kafka import KafkaBroker, running_kafka
from devstack.postgres import running_postgres

STORES = ("sqlite", "postgresql")


# Each row: what it measures, and the coroutine that measures it on a stack.
ROW_WORK: dict[str, tuple[str, Callable[[Stack], Coroutine[Any, Any, Figure]]]] = {
    "ingest1": ("events ingested, fan-out 1", lambda s: ingest_row(s, "ingest1", 1)),
    "ingest100": ("ledger rows, fan-out 100", lambda s: ingest_row(s, "ingest100", 100)),
    "webhook8": ("json delivery, concurrency 8", lambda s: delivery_row(s, "webhook8", "json", 8)),
    "webhook32": (
        "json delivery, concurrency 32",
        lambda s: delivery_row(s, "webhook32", "json", 32),
    ),
    "email": ("mail delivery, concurrency 8", lambda s: delivery_row(s, "email", "mail", 8)),
    "latency100": ("latency at 100 events/s", lambda s: latency_row(s, "latency100", 100)),
    "latency1000": ("latency at 1000 events/s", lambda s: latency_row(s, "latency1000", 1000)),
    "api": ("POST /subscriptions", api_row),
}
# Per build (its name), per row: one figure per round.
Rounds = dict[str, dict[str, list[Figure]]]


async def run_store(stack: Stack, rows: list[str]) -> Rounds:
    """Every row on one store, `--repeat` times over (all rows, then all again), so that
    repeats of a row are minutes apart."""
    rounds: Rounds = {build.name: {} for build in stack.options.builds}
    for number in range(1, stack.options.repeat + 1):
        stack.round = number
        for build, figures in (await run_round(stack, rows)).items():
            for name, figure in figures.items():
                rounds[build].setdefault(name, []).append(figure)
    return rounds


async def run_round(stack: Stack, rows: list[str]) -> dict[str, dict[str, Figure]]:
    """Each row once per build, the bare consumer once; with two builds, in turn, the one
    that goes first swapped every round: whichever run of a pair goes first reads up to a
    fifth higher on this machine, whatever its code."""
    builds = stack.options.builds
    order = builds if stack.round % 2 else builds[::-1]
    figures: dict[str, dict[str, Figure]] = {build.name: {} for build in builds}
    tag = f"[{stack.store}" + (f", round {stack.round}" if stack.options.repeat > 1 else "")

    async def row(name: str, what: str, work: Coroutine[Any, Any, Figure], build: str) -> Figure:
        say(f"{tag}{f', {build}' if build and len(builds) > 1 else ''}] {name}: {what}")
        started = time.perf_counter()
        figure = await work
        report(figure)
        say(f"    ({time.perf_counter() - started:.0f} s)")
        return figure

    for name, (what, work) in ROW_WORK.items():
        if name in rows:
            for build in order:
                stack.build = build
                figures[build.name][name] = await row(name, what, work(stack), build.name)
        if name == "ingest1":
            # The limit of ingest, over the topic ingest1 preloaded (or one of its own):
            # no jobwire in it, so one run serves every build.
            limit = consumer_baseline(stack)
            what = "bare aiokafka consumer over the same topic"
            consumer = await row("consumer", what, limit, "")
            for build in builds:
                figures[build.name]["consumer"] = consumer
    return figures


async def run(options: Options, broker: KafkaBroker, children: Children) -> None:
    sink = Sink(children, options.workdir)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    results: dict[str, Rounds] = {}
    builds = options.builds
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
            for build in builds:
                title = f"{store}: {options.seconds:g} s windows"
                medians = medians_of(results[store][build.name])
                table(title + (f", {build.name}" if len(builds) > 1 else ""), medians, apprise)
    finally:
        await admin.close()
        sink.close()
    if apprise:
        say("")
        say("bare Apprise to the same sink (the delivery rows' second baseline)")
        for figure in apprise.values():
            say(f"  {figure.label:<58} {figure.value:>12,.0f} {figure.unit}  ({figure.note})")
    for build in builds:
        say(f"\njobwire {build.name}: {build.description}; {options.seconds:g} s windows")
        by_store = {store: medians_of(rounds[build.name]) for store, rounds in results.items()}
        for store, figures in by_store.items():
            table(store, figures, apprise)
        compare(by_store)
    if len(builds) == 2:
        for store, rounds in results.items():
            # The --versus build is the baseline: the ratio is this build's over it.
            compare_builds(store, builds[1].name, builds[0].name, rounds, baseline_first=False)
    if options.profile:
        say(f"\nprofiles (speedscope): {options.workdir / 'profiles'}")


def medians_of(rounds: dict[str, list[Figure]]) -> dict[str, Figure]:
    """Each row's median round, with every round's value as its spread."""
    return {name: median_of(figures) for name, figures in rounds.items()}


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
        default=str(Path(sys.executable).with_name("jobwire")),
        metavar="BUILD",
        help="the jobwire to measure: an executable, or a git revision of this checkout "
        "(default: this virtualenv's executable)",
    )
    parser.add_argument(
        "--versus",
        metavar="BUILD",
        help="a second jobwire (an executable or a revision, e.g. HEAD~1) measured in the "
        "same run, each row of the two in turn, the first swapped each round (--repeat "
        "is at least 2); prints every round of both and their ratio",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION__NAME=VALUE",
        help="a setting for every jobwire the rows start, as its variable without JOBWIRE_ "
        "(e.g. kafka__batch_max_records=500); repeatable",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    stores = [s for s in args.stores.split(",") if s]
    rows = [r for r in args.rows.split(",") if r]
    unknown = sorted(set(stores) - set(STORES)) + sorted(set(rows) - set(ROWS))
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)} (stores: {STORES}, rows: {ROWS})")
    if args.jobwire == parser.get_default("jobwire") and not Path(args.jobwire).is_file():
        parser.error(f"{args.jobwire} is not there: run `make install` or pass --jobwire")
    try:
        settings = jobwire_settings(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    seconds = args.seconds or (4.0 if args.quick else 12.0)
    repeat = max(2 if args.versus else 1, args.repeat)
    workdir = Path(tempfile.mkdtemp(prefix="jobwire-bench-pipeline-"))
    builds: list[Build] = []
    try:
        for spec in (args.jobwire, args.versus):
            if spec:
                builds.append(build_of(spec, workdir))
        if len({build.name for build in builds}) < len(builds):
            raise ValueError(f"--jobwire and --versus are the same build ({builds[0].name})")
    except (ValueError, OSError, subprocess.CalledProcessError) as exc:
        remove_worktrees(builds)
        shutil.rmtree(workdir, ignore_errors=True)
        parser.error(str(exc))
    options = Options(stores, rows, seconds, repeat, args.profile, builds, workdir, settings)
    if args.profile:
        py_spy()

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    # Explicitly: a shell without job control starts `... &` with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    say(
        f"jobwire pipeline benchmark: {' versus '.join(b.description for b in builds)}; "
        f"{''.join(f'JOBWIRE_{k.upper()}={v}; ' for k, v in settings.items())}"
        f"{os.cpu_count()} cores, load "
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
            remove_worktrees(builds)
            shutil.rmtree(workdir, ignore_errors=True)
    say(
        f"done in {time.perf_counter() - started:.0f} s; load average now "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
