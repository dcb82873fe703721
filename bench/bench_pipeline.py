"""End to end: the real `jobwire run` between a real Kafka and real sinks, SQLite then PostgreSQL.

    python bench/bench_pipeline.py [--stores sqlite,postgresql] [--rows ingest1,api,...]
                                   [--seconds 12] [--quick] [--profile] [--jobwire PATH]

Every figure is measured in one run, on one broker, beside the baselines it is compared with:

* Kafka is a single-node broker from devstack/kafka.py; PostgreSQL a throwaway server from
  devstack/postgres.py (both run with durability off, as in the tests). Each row gets a fresh
  store (a new SQLite file or a new PostgreSQL database), its own topics and consumer group.
* jobwire is a black box: `jobwire run` (and `jobwire users add`) as subprocesses, configured
  by JOBWIRE_* variables, fed by a plain aiokafka producer, set up through its HTTP API, and
  observed from outside: the consumer group's committed offsets (ingest) and what arrives at
  the sinks (delivery, latency). So the benchmark keeps working while the internals change,
  and `--jobwire` points it at another build to compare.
* The sinks (bench/loopback_sink.py: HTTP and SMTP) run in a process of their own, as do the
  baselines (bench/bare_baselines.py): a bare aiokafka consumer reading a row's topic, the
  limit of ingest, and bare Apprise sending to the same sink, the limit of delivery.

The rows:

ingest1, ingest100  Events preloaded into the topic, then jobwire started with delivery parked
                    (the sink holds its one send open), so the figure is ingest alone: decode,
                    match, write the ledger, commit. Measured as the rate at which the group's
                    committed offsets advance, from the first commit, for --seconds. Fan-out
                    1: 1,000 subscriptions, each event matches one; fan-out 100: every event
                    matches 100 subscriptions (rows/s = events/s x 100).
webhook8, webhook32 The ledger filled first (a parked jobwire ingests the events, then stops),
email               then a fresh jobwire delivers them: alerts arriving at the sink per second
                    over --seconds, after a 1 s start. 100 subscriptions with a target each
                    (json:// at JOBWIRE_DELIVERY__CONCURRENCY 8 and 32; mailto:// at 8).
latency100,         Events published at a fixed rate for --seconds, each carrying its publish
latency1000         time; the sink notes when its alert arrives. Percentiles of publish ->
                    alert received; if jobwire falls behind, how far, and whether it keeps up.
api                 POST /subscriptions for --seconds from 8 concurrent keep-alive clients
                    with a user's key from `jobwire users add`.

When a row's preloaded events or alerts run out before half its window, it is run again with
enough for the window at the rate seen, so the sizes follow jobwire as it gets faster.
Each figure is printed with its ratio to the bare consumer, delivery rows also with their
ratio to bare Apprise, and the CPU jobwire and the sink used meanwhile (a sink near 100%
would be the bound). Figures are printed, never asserted.

`--profile` runs py-spy (installed into this virtualenv on first use, pinned) against jobwire
during each row's window and writes a speedscope file per row (open it at speedscope.app),
then prints the functions with the most samples of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack.kafka import KafkaBroker, create_topics_async, running_kafka  # noqa: E402
from devstack.postgres import SUPERUSER, PostgresServer, running_postgres  # noqa: E402

BENCH = Path(__file__).resolve().parent
PY_SPY = "py-spy==0.4.3"
ROWS = (
    "ingest1",
    "ingest100",
    "webhook8",
    "webhook32",
    "email",
    "latency100",
    "latency1000",
    "api",
)
STORES = ("sqlite", "postgresql")
FANOUT1_SUBSCRIPTIONS = 1000
DELIVERY_SUBSCRIPTIONS = 100
API_CLIENTS = 8
SETUP_CLIENTS = 16
DELIVERY_WARMUP_S = 1.0
STALL_S = 60.0
MIN_COMMITS = 3
# The figures of the issue, for reading the table; nothing is checked against them.
GOALS = {
    "ingest1": ">= 50,000",
    "ingest100": ">= 200,000",
    "webhook8": ">= 2,000",
    "webhook32": ">= 2,000",
    "email": ">= 300",
    "latency100": "p99 <= 50 ms",
    "latency1000": "p99 <= 100 ms",
    "api": ">= 1,000",
}


def say(text: str) -> None:
    print(text, flush=True)


# -- processes -------------------------------------------------------------------------------


class Children:
    """Every process this benchmark starts, so that each one is stopped however the run ends."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[Any]] = []

    def spawn(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        # A session of its own: a Ctrl-C reaches only us, and we stop the children in order.
        proc: subprocess.Popen[Any] = subprocess.Popen(list(argv), start_new_session=True, **kwargs)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        alive = [p for p in self._procs if p.poll() is None]
        for proc in alive:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in alive:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()


async def stop_process(
    proc: subprocess.Popen[Any], then: Callable[[], None] | None = None, grace: float = 30.0
) -> None:
    """SIGTERM (jobwire's clean stop), `then` (e.g. let the sink answer), SIGKILL after grace."""
    if proc.poll() is None:
        proc.terminate()
    if then is not None:
        then()
    try:
        await asyncio.to_thread(proc.wait, grace)
    except subprocess.TimeoutExpired:
        say(f"    (pid {proc.pid} did not stop within {grace:g} s: killed)")
        proc.kill()
        await asyncio.to_thread(proc.wait)


class CpuMeter:
    """CPU used by some processes over a window, in % of one core, read from /proc; and by
    everything else on the machine ("others"): other work on a shared machine is noise."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pids: dict[str, Callable[[], list[int]]]) -> None:
        self._pids = pids
        self._start: dict[str, float] = {}
        self._machine = 0.0
        self._started = 0.0

    def start(self) -> None:
        self._start = {name: self._seconds(pids()) for name, pids in self._pids.items()}
        self._machine = self._machine_busy()
        self._started = time.perf_counter()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._started
        used = {
            name: 100 * (self._seconds(pids()) - self._start.get(name, 0.0)) / elapsed
            for name, pids in self._pids.items()
        }
        machine = 100 * (self._machine_busy() - self._machine) / elapsed
        used["others"] = max(0.0, machine - sum(used.values()))
        return used

    @classmethod
    def _seconds(cls, pids: list[int]) -> float:
        total = 0
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / cls.TICK

    @classmethod
    def _machine_busy(cls) -> float:
        """CPU seconds all cores spent on anything but idle and iowait."""
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / cls.TICK


def children_of(parent: int) -> list[int]:
    """`parent` and its direct children (a PostgreSQL server and its backends)."""
    found = [parent]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:  # ppid
            found.append(int(entry.name))
    return found


# -- the sink --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    kind: str  # "h" an HTTP request, "m" a mail
    at_ns: int  # wall clock at the sink
    marker: int  # the number after "bt" in the alert, 0 if none


class Sink:
    """bench/loopback_sink.py, driven over its stdin."""

    def __init__(self, children: Children, workdir: Path) -> None:
        self._workdir = workdir
        self.proc = children.spawn(
            [sys.executable, str(BENCH / "loopback_sink.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError(f"the sink did not start (it said {ready!r})")
        self.http_port, self.smtp_port = int(ready[1]), int(ready[2])
        self._takes = 0

    def command(self, line: str) -> str:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer: str = self.proc.stdout.readline().strip()
        if not answer or answer.startswith("ERROR"):
            raise RuntimeError(f"the sink answered {answer!r} to {line!r}")
        return answer

    def hold(self) -> None:
        self.command("hold")

    def open(self) -> None:
        self.command("open")

    def take(self) -> list[Arrival]:
        """What arrived since the last take."""
        self._takes += 1
        path = self._workdir / f"sink-take-{self._takes}.txt"
        self.command(f"take {path}")
        arrivals = []
        for line in path.read_text().splitlines():
            kind, at_ns, marker = line.split()
            arrivals.append(Arrival(kind, int(at_ns), int(marker)))
        path.unlink()
        return arrivals

    def json_url(self, path: str) -> str:
        # rto: Apprise's read timeout (4 s by default) must outlast a parked send.
        return f"json://127.0.0.1:{self.http_port}/{path}?rto=600"

    def mail_url(self, n: int) -> str:
        return (
            f"mailto://127.0.0.1:{self.smtp_port}?from=jobwire@example.com"
            f"&to=user{n}@example.com&cto=600"
        )

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


# -- jobwire as a black box ------------------------------------------------------------------


@dataclass(frozen=True)
class Topics:
    postings: str
    articles: str
    dead_letter: str
    group: str


@dataclass
class Jobwire:
    """One `jobwire run`; its JSON log goes to a file, read for its API address only."""

    proc: subprocess.Popen[Any]
    log_path: Path
    _offset: int = 0
    _lines: list[dict[str, Any]] = field(default_factory=list)

    async def wait_for_log(self, event: str, within_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + within_s
        buffered = b""
        with self.log_path.open("rb") as log:
            while True:
                chunk = log.read()
                if chunk:
                    buffered += chunk
                    *lines, buffered = buffered.split(b"\n")
                    for line in lines:
                        if event.encode() in line:
                            with contextlib.suppress(ValueError):
                                found: dict[str, Any] = orjson.loads(line)
                                if found.get("event") == event:
                                    return found
                    continue
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"jobwire exited ({self.proc.returncode}) before logging {event}; "
                        f"the end of {self.log_path}:\n{tail(self.log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jobwire did not log {event} within {within_s:g} s")
                await asyncio.sleep(0.05)

    async def api_url(self) -> str:
        url: str = (await self.wait_for_log("api.listening"))["url"]
        return url

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"jobwire exited ({self.proc.returncode}); the end of {self.log_path}:\n"
                + tail(self.log_path)
            )

    def fanout(self) -> float | None:
        """Matches per event, from its `match.recorded` lines (None if it logs none)."""
        events = matches = 0
        with self.log_path.open("rb") as log:
            for line in log:
                if b'"match.recorded"' in line:
                    record = orjson.loads(line)
                    events += int(record.get("events", 0))
                    matches += int(record.get("matches", 0))
        return matches / events if events else None


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


# -- the stack: broker, store, sink, and how to start jobwire on them ------------------------


@dataclass
class Options:
    stores: list[str]
    rows: list[str]
    seconds: float
    quick: bool
    profile: bool
    jobwire: Path
    workdir: Path


@dataclass
class Stack:
    options: Options
    children: Children
    broker: KafkaBroker
    sink: Sink
    admin: AIOKafkaAdminClient
    store: str = "sqlite"
    postgres: PostgresServer | None = None
    operator_key: str = field(default_factory=lambda: f"op-{uuid.uuid4().hex}")
    # The topic each ingest row preloaded, and how many events: the bare consumer reads one.
    preloaded: dict[str, tuple[str, int]] = field(default_factory=dict)
    _runs: Counter[str] = field(default_factory=Counter)
    _setup_topics: Topics | None = None

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    async def new_store(self, name: str) -> str:
        if self.postgres is None:
            return f"sqlite+aiosqlite:///{self.options.workdir / f'{self.store}-{name}.db'}"
        import asyncpg  # type: ignore[import-untyped]

        database = f"bench_{name}_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(
            host="127.0.0.1", port=self.postgres.port, user=SUPERUSER, database="postgres"
        )
        try:
            await conn.execute(f"CREATE DATABASE {database} OWNER jobwire")
        finally:
            await conn.close()
        return self.postgres.url.rsplit("/", 1)[0] + f"/{database}"

    async def new_topics(self, name: str) -> Topics:
        stem = f"bench.{self.store}.{name}.{uuid.uuid4().hex[:6]}"
        topics = Topics(f"{stem}.postings", f"{stem}.articles", f"{stem}.dead-letter", stem)
        await create_topics_async(
            self.bootstrap, [topics.postings, topics.articles, topics.dead_letter]
        )
        return topics

    async def setup_topics(self) -> Topics:
        """Topics nobody publishes to, for the jobwire that only creates subscriptions."""
        if self._setup_topics is None:
            self._setup_topics = await self.new_topics("setup")
        t = self._setup_topics
        return Topics(t.postings, t.articles, t.dead_letter, f"setup-{uuid.uuid4().hex[:8]}")

    def env(self, store_url: str, topics: Topics, **settings: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("JOBWIRE_")}
        env.update(
            JOBWIRE_KAFKA__BOOTSTRAP_SERVERS=self.bootstrap,
            JOBWIRE_KAFKA__POSTINGS_TOPIC=topics.postings,
            JOBWIRE_KAFKA__ARTICLES_TOPIC=topics.articles,
            JOBWIRE_KAFKA__DEAD_LETTER_TOPIC=topics.dead_letter,
            JOBWIRE_KAFKA__GROUP_ID=topics.group,
            JOBWIRE_STORE__URL=store_url,
            JOBWIRE_STORE__AUTO_MIGRATE="true",
            JOBWIRE_API__PORT="0",
            JOBWIRE_API__OPERATOR_KEY=self.operator_key,
            JOBWIRE_API__SIGNING_SECRET="bench-signing-secret",
            JOBWIRE_TARGETS__ALLOW_PRIVATE_HOSTS="true",
            JOBWIRE_LIMITS__SUBSCRIPTIONS_PER_USER=str(10**9),
            # As in production: JSON lines at INFO, to a file instead of a log collector.
            JOBWIRE_LOG__FORMAT="json",
            JOBWIRE_LOG__LEVEL="INFO",
        )
        env.update({f"JOBWIRE_{key.upper()}": value for key, value in settings.items()})
        return env

    def start_jobwire(self, name: str, env: dict[str, str]) -> Jobwire:
        self._runs[name] += 1
        log_path = self.options.workdir / f"jobwire-{self.store}-{name}-{self._runs[name]}.log"
        with log_path.open("wb") as log:
            proc = self.children.spawn(
                [str(self.options.jobwire), "run"],
                env=env,
                # No .env file of the caller's directory may change its settings.
                cwd=self.options.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return Jobwire(proc, log_path)

    def parked_settings(self) -> dict[str, str]:
        """Delivery that does not compete: one send at a time, held open by the sink."""
        return {"delivery__concurrency": "1", "delivery__timeout_s": "600"}

    async def stop_parked(self, jobwire: Jobwire) -> None:
        await stop_process(jobwire.proc, then=self.sink.open)

    def cpu_meter(self, jobwire: Jobwire) -> CpuMeter:
        pids: dict[str, Callable[[], list[int]]] = {
            "jobwire": lambda: [jobwire.proc.pid],
            "sink": lambda: [self.sink.proc.pid],
            "kafka": lambda: [self.broker.pid],
            "bench": lambda: [os.getpid()],
        }
        if self.postgres is not None:
            postmaster = int((self.postgres.datadir / "postmaster.pid").read_text().split()[0])
            pids["postgres"] = lambda: children_of(postmaster)
        return CpuMeter(pids)

    async def committed(self, topics: Topics) -> int:
        offsets = await self.admin.list_consumer_group_offsets(topics.group)
        return sum(
            meta.offset
            for tp, meta in offsets.items()
            if tp.topic == topics.postings and meta.offset > 0
        )


# -- publishing ------------------------------------------------------------------------------


def posting(row: str, n: int, employer: str, marker: int = 0) -> tuple[bytes, bytes]:
    """One job posting as publishers send it: key = id, value = JSON."""
    event_id = f"{row}-{n}"
    title = f"Store associate {n}" + (f" bt{marker}" if marker else "")
    value = {
        "id": event_id,
        "employer": employer,
        "title": title,
        "city": "Portland",
        "contract": "Permanent",
        "url": f"https://jobs.example.com/{event_id}",
        "published_at": "2024-05-02T09:00:00Z",
    }
    return event_id.encode(), orjson.dumps(value)


@contextlib.asynccontextmanager
async def producer(bootstrap: str, **settings: Any) -> AsyncIterator[AIOKafkaProducer]:
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, **settings)
    await prod.start()
    try:
        yield prod
    finally:
        await prod.stop()


async def preload(stack: Stack, topic: str, events: Iterator[tuple[bytes, bytes]]) -> int:
    """Publish `events` as fast as a plain producer can; how many."""
    started = time.perf_counter()
    count = 0
    pending: list[asyncio.Future[Any]] = []
    async with producer(stack.bootstrap, linger_ms=20, max_batch_size=256 * 1024) as prod:
        for key, value in events:
            pending.append(await prod.send(topic, value, key=key))
            count += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    elapsed = time.perf_counter() - started
    say(f"    preloaded {count:,} events in {elapsed:.1f} s ({count / elapsed:,.0f}/s)")
    return count


async def create_subscriptions(stack: Stack, api_url: str, specs: list[dict[str, Any]]) -> None:
    """Through the API, as the operator, with a few clients at once."""
    started = time.perf_counter()
    queue = list(reversed(specs))
    headers = {"Authorization": f"Bearer {stack.operator_key}"}

    async def client(http: httpx.AsyncClient) -> None:
        while queue:
            spec = queue.pop()
            response = await http.post("/subscriptions", json=spec, headers=headers)
            if response.status_code != 201:
                raise RuntimeError(
                    f"POST /subscriptions answered {response.status_code}: {response.text}"
                )

    limits = httpx.Limits(max_connections=SETUP_CLIENTS)
    async with httpx.AsyncClient(base_url=api_url, limits=limits, timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(SETUP_CLIENTS)))
    elapsed = time.perf_counter() - started
    say(f"    {len(specs):,} subscriptions created in {elapsed:.1f} s")


async def set_up(stack: Stack, name: str, specs: list[dict[str, Any]]) -> tuple[str, Topics]:
    """A fresh store with these subscriptions, and fresh topics; no jobwire left running."""
    store_url = await stack.new_store(name)
    topics = await stack.new_topics(name)
    # A jobwire of its own for the set-up, on other topics: the measured one must start with
    # every subscription loaded, and its topics full.
    setup_env = stack.env(store_url, await stack.setup_topics())
    jobwire = stack.start_jobwire(f"{name}-setup", setup_env)
    try:
        await create_subscriptions(stack, await jobwire.api_url(), specs)
    finally:
        await stop_process(jobwire.proc)
    return store_url, topics


# -- profiling -------------------------------------------------------------------------------


class Profiler:
    """py-spy recording one process for a window: a speedscope file and a summary.

    Only samples of the thread holding the GIL are kept (`--gil`): jobwire's Python work is
    serialised by it, so they add up to where its time goes, and their total says how much of
    the window the interpreter was busy. (Without it, py-spy counts threads waiting on a
    queue in C as busy, which buries the work.) Native work that releases the GIL (SQLite
    executing a statement, TLS, the Rust matcher if it released it) does not show.
    """

    RATE = 100
    FLAGS = ("--gil", "--function", "--nonblocking")

    def __init__(self, stack: Stack, name: str) -> None:
        self.enabled = stack.options.profile
        self.path = stack.options.workdir / "profiles" / f"{stack.store}-{name}.speedscope.json"
        self._children = stack.children
        self._proc: subprocess.Popen[Any] | None = None
        self._started = 0.0

    def start(self, pid: int) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._proc = self._children.spawn(
            [
                *(str(py_spy()), "record", "--pid", str(pid), "--rate", str(self.RATE)),
                *self.FLAGS,
                *("--format", "speedscope", "--output", str(self.path)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._started = time.perf_counter()

    async def stop(self) -> str | None:
        """Stop sampling; the summary, or None when not profiling."""
        if self._proc is None:
            return None
        elapsed = time.perf_counter() - self._started
        self._proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        await asyncio.to_thread(self._proc.wait, 60)
        if not self.path.is_file():
            assert self._proc.stderr is not None
            return f"    py-spy wrote no profile: {self._proc.stderr.read().decode()[-2000:]}"
        return summarise(self.path, elapsed)


def py_spy() -> Path:
    binary = Path(sys.executable).with_name("py-spy")
    if not binary.is_file():
        say(f"installing {PY_SPY} into {Path(sys.executable).parent.parent} for --profile")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", PY_SPY], check=True)
    return binary


def summarise(path: Path, seconds: float, top: int = 15) -> str:
    """The functions with the most samples of their own (and with their callees), and how
    much of the window the GIL was held at all."""
    profile = json.loads(path.read_text())
    frames = profile["shared"]["frames"]
    own: Counter[int] = Counter()
    total: Counter[int] = Counter()
    samples = 0
    for thread in profile["profiles"]:
        for stack in thread["samples"]:
            if not stack:
                continue
            samples += 1
            own[stack[-1]] += 1
            for index in set(stack):
                total[index] += 1
    if not samples:
        return "    (no samples)"
    busy = 100 * samples / (Profiler.RATE * seconds)
    lines = [
        f"    GIL held in {busy:.0f}% of {seconds:.1f} s ({samples:,} samples); by own samples:",
        f"    {'own':>6} {'total':>6}  function",
    ]
    for index, count in own.most_common(top):
        frame = frames[index]
        where = f"{short_path(frame.get('file', '?'))}:{frame.get('line', '?')}"
        lines.append(
            f"    {100 * count / samples:>5.1f}% {100 * total[index] / samples:>5.1f}%  "
            f"{frame['name']} ({where})"
        )
    return "\n".join(lines)


def short_path(path: str) -> str:
    """Where a function lives, without the virtualenv's or the interpreter's prefix."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if path.startswith(str(REPO) + "/"):
        return path[len(str(REPO)) + 1 :]
    return re.sub(r"^.*/lib/python3\.\d+/", "", path)


# -- figures ---------------------------------------------------------------------------------


@dataclass
class Latency:
    published: int
    received: int
    rate: float  # events published per second
    delivered_per_s: float  # alerts arriving per second while publishing
    behind_at_end: int  # published but not arrived when publishing stopped
    unsent: int  # never arrived, after the grace period
    p50: float
    p95: float
    p99: float
    max: float


@dataclass
class Figure:
    row: str
    label: str
    value: float  # the figure: per second, or the p99 in ms for a latency row
    unit: str
    note: str = ""
    cpu: dict[str, float] = field(default_factory=dict)
    latency: Latency | None = None
    profile: str | None = None


def cpu_note(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {share:.0f}%" for name, share in cpu.items())


def report(figure: Figure) -> None:
    if figure.latency is not None:
        lat = figure.latency
        say(
            f"    => p50 {lat.p50:.0f} ms, p95 {lat.p95:.0f} ms, p99 {lat.p99:.0f} ms, "
            f"max {lat.max:.0f} ms; {lat.received:,} of {lat.published:,} arrived"
        )
    else:
        say(f"    => {figure.value:,.0f} {figure.unit}")
    if figure.note:
        say(f"       {figure.note}")
    if figure.cpu:
        say(f"       cpu (% of a core): {cpu_note(figure.cpu)}")
    if figure.profile:
        say(f"       profile of jobwire:\n{figure.profile}")


# -- rows ------------------------------------------------------------------------------------


def sized(count: float, minimum: int) -> int:
    return max(minimum, math.ceil(count / 1000.0) * 1000)


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

        # Enough for the window at about 3x the speed of the "before" (8,337/s).
        count = 25_000 * max(4, int(opts.seconds))
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

        count = 1_000 * max(4, int(opts.seconds))  # ~3x the "before" (330 events/s)

    for attempt in (1, 2):
        store_url, topics = await set_up(stack, row, specs)
        await preload(stack, topics.postings, (posting(row, n, employer(n)) for n in range(count)))
        stack.preloaded[row] = (topics.postings, count)
        stack.sink.hold()
        jobwire = stack.start_jobwire(row, stack.env(store_url, topics, **stack.parked_settings()))
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
        if attempt == 2 or not (exhausted and elapsed < opts.seconds / 2):
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


async def fill_ledger(
    stack: Stack, row: str, specs: list[dict[str, Any]], employer: Callable[[int], str], count: int
) -> tuple[str, Topics]:
    """A store whose ledger holds `count` pending alerts: ingested by a parked jobwire."""
    store_url, topics = await set_up(stack, row, specs)
    await preload(stack, topics.postings, (posting(row, n, employer(n)) for n in range(count)))
    stack.sink.hold()
    jobwire = stack.start_jobwire(
        f"{row}-fill", stack.env(store_url, topics, **stack.parked_settings())
    )
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
    note = f"{counted:,} alerts over {elapsed:.1f} s, of {count:,} in the ledger"
    return Figure(row, label, rate, "alerts/s", note, cpu, None, profile)


async def watch_arrivals(
    stack: Stack,
    jobwire: Jobwire,
    total: int,
    window: float,
    meter: CpuMeter,
    profiler: Profiler,
) -> tuple[float, int, float, bool]:
    """Arrivals per second over `window`, from DELIVERY_WARMUP_S after the first one."""
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


async def latency_row(stack: Stack, row: str, rate: int) -> Figure:
    """Publish at `rate` for the window; publish -> alert at the sink, per event."""
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
            meter.start()
            profiler.start(jobwire.proc.pid)
            published, sent_at = await publish_at(stack, prod, topics, row, rate, opts.seconds)
            end_ns = time.time_ns()
            arrivals = [a for a in await wait_for_rest(stack, jobwire, published)]
            cpu = meter.stop()
            profile = await profiler.stop()
    finally:
        await stop_process(jobwire.proc)
    stack.sink.take()

    latencies = sorted((a.at_ns - a.marker) / 1e6 for a in arrivals if a.marker in sent_at)
    in_window = sum(1 for a in arrivals if a.at_ns <= end_ns)
    delivered = in_window / opts.seconds
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
    )
    note = f"alerts arrived at {delivered:,.0f}/s while {rate:,}/s were published"
    if delivered < 0.9 * rate:
        note += (
            f"; jobwire falls behind: {lat.behind_at_end:,} alerts behind when publishing "
            f"stopped, {lat.unsent:,} still unsent after the grace period (the percentiles are "
            "of those that arrived)"
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


async def api_row(stack: Stack) -> Figure:
    """POST /subscriptions with a user's key from several keep-alive clients."""
    opts = stack.options
    store_url = await stack.new_store("api")
    topics = await stack.new_topics("api")
    env = stack.env(store_url, topics)
    added = await asyncio.to_thread(
        subprocess.run,
        [str(opts.jobwire), "users", "add", f"bench-{uuid.uuid4().hex[:8]}@example.com"],
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

        async def create_one(http: httpx.AsyncClient) -> None:
            n = next(counter)
            body = {
                "name": f"bench {n}",
                "employers": [f"Employer {n % 3000}"],
                "cities": ["Portland"],
                "notify": ["slack://TokenA/TokenB/TokenC/#jobs"],
            }
            response = await http.post("/subscriptions", json=body, headers=headers)
            if response.status_code != 201:
                raise RuntimeError(
                    f"POST /subscriptions answered {response.status_code}: {response.text}"
                )

        async def client(http: httpx.AsyncClient, deadline: float) -> None:
            nonlocal created
            while time.perf_counter() < deadline:
                await create_one(http)
                created += 1

        limits = httpx.Limits(max_connections=API_CLIENTS)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
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


async def run_baseline(stack: Stack, args: list[str]) -> dict[str, float]:
    proc = stack.children.spawn(
        [sys.executable, str(BENCH / "bare_baselines.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = await asyncio.to_thread(proc.communicate)
    if proc.returncode != 0:
        raise RuntimeError(f"baseline {args[0]} failed: {err.strip()[-2000:]}")
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


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


# -- the run ---------------------------------------------------------------------------------


async def run_store(stack: Stack, rows: list[str]) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    tag = f"[{stack.store}]"

    async def row(name: str, what: str, work: Any) -> None:
        say(f"{tag} {name}: {what}")
        started = time.perf_counter()
        figure: Figure = await work
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


def table(
    title: str,
    figures: dict[str, Figure],
    apprise: dict[str, Figure],
) -> None:
    baseline = figures.get("consumer")
    say("")
    say(title)
    header = (
        f"  {'figure':<58} {'measured':>16} {'vs consumer':>12} {'vs Apprise':>11}  "
        f"{'goal':<14} cpu (% of a core)"
    )
    say(header)
    say("  " + "-" * (len(header) + 20))
    order = ["consumer", *ROWS]
    for name in order:
        figure = figures.get(name)
        if figure is None:
            continue
        if figure.latency is not None:
            lat = figure.latency
            measured = f"p50 {lat.p50:.0f}, p99 {lat.p99:.0f} ms"
            vs_consumer = vs_apprise = ""
        else:
            measured = f"{figure.value:,.0f} {figure.unit}"
            vs_consumer = (
                f"{figure.value / baseline.value:.4f}x" if baseline and name != "consumer" else ""
            )
            vs_apprise = f"{figure.value / apprise[name].value:.2f}x" if name in apprise else ""
        cpu = cpu_note({k: v for k, v in figure.cpu.items() if k != "bench"})
        say(
            f"  {figure.label:<58} {measured:>16} {vs_consumer:>12} {vs_apprise:>11}  "
            f"{GOALS.get(name, ''):<14} {cpu}"
        )
        if figure.latency is not None:
            lat = figure.latency
            say(
                f"  {'':<58} {'':>16}   p95 {lat.p95:.0f} ms, max {lat.max:.0f} ms; "
                f"{lat.delivered_per_s:,.0f} alerts/s arrived"
                + (
                    f"; BEHIND by {lat.behind_at_end:,} at the end, backlog growing"
                    if lat.delivered_per_s < 0.9 * lat.rate
                    else ""
                )
            )


def compare(results: dict[str, dict[str, Figure]]) -> None:
    sqlite, postgres = results.get("sqlite"), results.get("postgresql")
    if not sqlite or not postgres:
        return
    say("")
    say("PostgreSQL against SQLite (how many times slower; the issue's goal: at most 1.5)")
    for name in ["consumer", *ROWS]:
        a, b = sqlite.get(name), postgres.get(name)
        if a is None or b is None:
            continue
        if a.latency is not None and b.latency is not None:
            factor = b.latency.p99 / a.latency.p99
            say(f"  {a.label:<58} p99 {a.value:>8,.0f} -> {b.value:>8,.0f} ms   {factor:.2f}x")
        else:
            factor = a.value / b.value
            say(f"  {a.label:<58} {a.value:>12,.0f} -> {b.value:>10,.0f} {a.unit:<9} {factor:.2f}x")


def git_describe() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "(not a git checkout)"
    return head + (" (with uncommitted changes)" if dirty else "")


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
            table(
                f"{store}: jobwire at {git_describe()}; {options.seconds:g} s windows",
                results[store],
                apprise,
            )
    finally:
        await admin.close()
        sink.close()
    if apprise:
        say("")
        say("bare Apprise to the same sink (the delivery rows' second baseline)")
        for figure in apprise.values():
            say(f"  {figure.label:<58} {figure.value:>12,.0f} {figure.unit}  ({figure.note})")
    for store, figures in results.items():
        table(f"{store}: jobwire at {git_describe()}", figures, apprise)
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
    options = Options(stores, rows, seconds, args.quick, args.profile, args.jobwire, workdir)
    if args.profile:
        py_spy()

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
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
    finally:
        children.close()
        keep = failed or args.keep or args.profile
        if keep:
            say(f"work directory kept: {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
