"""jobwire as a black box on a broker, a store and a sink: start it, set it up, feed it."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from devstack.kafka import KafkaBroker, create_topics_async
from devstack.postgres import SUPERUSER, PostgresServer

from .builds import Build
from .processes import Children, CpuMeter, children_of, say, stop_process, tail
from .sink import Sink

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SETUP_CLIENTS = 16
# Subscriptions (each with a target of its own) of the delivery and latency rows.
DELIVERY_SUBSCRIPTIONS = 100
# How long nothing may happen before a row gives up.
STALL_S = 60.0


@dataclass(frozen=True)
class Topics:
    """A row's topics (fresh, so they hold its events only) and the consumer group reading them."""

    postings: str
    articles: str
    dead_letter: str
    group: str


@dataclass
class Jobwire:
    """One `jobwire run`. Its JSON log goes to a file, read for the API's address and, as a
    check only, the fan-out it saw; every figure is measured outside it."""

    proc: subprocess.Popen[Any]
    log_path: Path

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


@dataclass
class Options:
    stores: list[str]
    rows: list[str]
    seconds: float
    repeat: int
    profile: bool
    builds: list[Build]  # the first is measured; a second, with --versus, beside it
    workdir: Path
    settings: dict[str, str] = field(default_factory=dict)  # --set, for every jobwire


def jobwire_settings(pairs: list[str]) -> dict[str, str]:
    """`--set` pairs (`kafka__batch_max_records=500`: a setting's variable without `JOBWIRE_`)
    as settings for every jobwire the rows start. Raises ValueError naming a pair that is not
    one of jobwire's settings, so a typo is not measured as the default."""
    from config.settings import Settings

    chosen: dict[str, str] = {}
    for pair in pairs:
        key, given, value = pair.partition("=")
        section, _, name = key.strip().lower().partition("__")
        group = Settings.model_fields.get(section)
        names = getattr(group.annotation, "model_fields", {}) if group else {}
        if not given or name not in names:
            raise ValueError(
                f"--set {pair}: not one of jobwire's settings (SECTION__NAME=VALUE, its "
                "variable without JOBWIRE_, e.g. kafka__batch_max_records=500; the README's "
                "Configuration table lists them)"
            )
        chosen[f"{section}__{name}"] = value
    return chosen


@dataclass
class Stack:
    """The broker, the sink and the store kind a row runs on, and how it starts jobwire there."""

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
    round: int = 1  # of --repeat
    build: Build | None = None  # which of the builds runs now (None: the first)
    _runs: Counter[str] = field(default_factory=Counter)
    _setup_topics: Topics | None = None

    @property
    def jobwire(self) -> Path:
        """The executable of the build that runs now."""
        return (self.build or self.options.builds[0]).executable

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    async def new_store(self, name: str) -> str:
        """An empty store of this kind: every row and round starts from nothing."""
        unique = f"{name}_{uuid.uuid4().hex[:8]}"
        if self.postgres is None:
            return f"sqlite+aiosqlite:///{self.options.workdir / f'{self.store}-{unique}.db'}"
        import asyncpg  # type: ignore[import-untyped]

        database = f"bench_{unique}"
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
            # The benchmark is one client creating subscriptions as fast as it can: the abuse
            # limits (one instance's requests per key a minute) would measure themselves.
            JOBWIRE_LIMITS__REQUESTS_PER_MINUTE=str(10**9),
            # As in production: JSON lines at INFO, to a file instead of a log collector.
            JOBWIRE_LOG__FORMAT="json",
            JOBWIRE_LOG__LEVEL="INFO",
        )
        env.update({f"JOBWIRE_{key.upper()}": value for key, value in settings.items()})
        # Last: what the caller set with --set wins over a row's own choice.
        env.update({f"JOBWIRE_{k.upper()}": v for k, v in self.options.settings.items()})
        return env

    def start_jobwire(self, name: str, env: dict[str, str]) -> Jobwire:
        self._runs[name] += 1
        log_path = self.options.workdir / f"jobwire-{self.store}-{name}-{self._runs[name]}.log"
        with log_path.open("wb") as log:
            proc = self.children.spawn(
                [str(self.jobwire), "run"],
                env=env,
                # No .env file of the caller's directory may change its settings.
                cwd=self.options.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return Jobwire(proc, log_path)

    def parked_env(self, store_url: str, topics: Topics) -> dict[str, str]:
        """A jobwire whose delivery does not compete: one send at a time, held open by the
        sink. Parked whatever `--set` says: a concurrency set for the measured run once held
        that many sends open here, which the measured run then found missing, so it never saw
        the ledger run out and divided what arrived by the whole window."""
        env = self.env(store_url, topics)
        parked = {"delivery__concurrency": "1", "delivery__timeout_s": "600"}
        env.update({f"JOBWIRE_{key.upper()}": value for key, value in parked.items()})
        return env

    async def stop_parked(self, jobwire: Jobwire) -> None:
        await stop_process(jobwire.proc, then=self.sink.open)

    def cpu_meter(self, jobwire: Jobwire) -> CpuMeter:
        pids: dict[str, Callable[[], list[int]]] = {
            "jobwire": lambda: children_of(jobwire.proc.pid),
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


def sized(count: float, minimum: int) -> int:
    """`count` rounded up to thousands, and at least `minimum`: a row's next, larger, load."""
    return max(minimum, math.ceil(count / 1000.0) * 1000)
