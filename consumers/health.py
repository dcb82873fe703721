"""How the consumer is doing, told as it happens: whether the brokers answer, how far behind it is.

aiokafka hides a lost broker: `getmany` keeps returning nothing, as it does when no events
come, and the library retries on its own. Measured with a broker killed mid-run: readiness said
"ok" for the whole 24 s outage while aiokafka logged about 60 lines a second. `KafkaLiveness`
asks the brokers for metadata every `interval_s` (one small request on a connection aiokafka
already holds) and says when they stop answering and when they answer again: readiness and
`jobwire_kafka_up` follow it, and jobwire logs `consumer.kafka_lost` and
`consumer.kafka_restored` once each per outage.

What the consumer reports goes to a `ConsumerObserver` (the service's metrics), so this edge
knows nothing of what is done with the figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from consumers.connection import UNREACHABLE_HINT
from consumers.events import MalformedCause

log = structlog.get_logger("jobwire.consumer")

# A probe every 2 s, given 5 s to answer: a broker that goes away is noticed within 7 s (2 s when
# it refuses connections, as a stopped broker's host does), inside readiness's 10 s.
PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 5.0

PartitionLag = Mapping[tuple[str, int], int]


class ConsumerObserver(Protocol):
    """What the consumer tells as it goes; every call is cheap and never fails."""

    def events_received(self, topic: str, count: int) -> None: ...
    def event_dead_lettered(self, topic: str, cause: MalformedCause) -> None: ...
    def consumer_lag(self, lag: PartitionLag) -> None: ...
    def kafka_reachable(self, up: bool) -> None: ...


class NoObserver:
    """Tells no one (a consumer built without the service's metrics)."""

    def events_received(self, topic: str, count: int) -> None:
        pass

    def event_dead_lettered(self, topic: str, cause: MalformedCause) -> None:
        pass

    def consumer_lag(self, lag: PartitionLag) -> None:
        pass

    def kafka_reachable(self, up: bool) -> None:
        pass


class KafkaLiveness:
    """Whether the brokers answer this consumer now; `connected` is what readiness reports."""

    def __init__(
        self,
        bootstrap_servers: str,
        observer: ConsumerObserver,
        interval_s: float = PROBE_INTERVAL_S,
        timeout_s: float = PROBE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.observer = observer
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.connected = False
        self._lost_at: float | None = None

    def started(self) -> None:
        """The consumer joined (`consumer.started` says so), maybe after an outage that
        restarted it: then that outage is over."""
        self.answered()

    def stopped(self) -> None:
        """The consumer left; an outage in progress stays one (it ends when one answers)."""
        self._set(False)

    async def probe(self, request: Callable[[], Awaitable[object]]) -> None:
        """Ask once (`request` is a metadata request, `AIOKafkaConsumer.topics`) and say what
        changed: `consumer.kafka_lost` on the first failure, `_restored` on the next answer."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await request()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed(exc)
        else:
            self.answered()

    def failed(self, exc: BaseException) -> None:
        if not self.connected:
            return  # already said, or never connected (the start-up lines say why)
        self._lost_at = self.clock()
        self._set(False)
        error = str(exc) or f"no answer within {self.timeout_s:g} s"
        log.error(
            "consumer.kafka_lost",
            bootstrap_servers=self.bootstrap_servers,
            error=error,
            hint=UNREACHABLE_HINT + "; jobwire keeps retrying and says when it is back",
        )

    def answered(self) -> None:
        if self.connected:
            return
        if self._lost_at is not None:
            log.info(
                "consumer.kafka_restored",
                bootstrap_servers=self.bootstrap_servers,
                down_s=round(self.clock() - self._lost_at, 1),
            )
            self._lost_at = None
        self._set(True)

    def _set(self, up: bool) -> None:
        self.connected = up
        self.observer.kafka_reachable(up)


async def partition_lag(consumer: AIOKafkaConsumer) -> dict[tuple[str, int], int]:
    """Records not yet handed out, per assigned partition: high-water mark − position.

    A partition whose high-water mark is not known yet (no fetch answered since it was
    assigned), or that moved to another member meanwhile, is left out rather than guessed.
    """
    lag: dict[tuple[str, int], int] = {}
    for tp in sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition)):
        try:
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            # Immediate once the partition has a position, which an answered fetch implies.
            async with asyncio.timeout(1.0):
                position = await consumer.position(tp)
        except (AssertionError, TimeoutError, KafkaError):
            continue
        lag[(tp.topic, tp.partition)] = max(highwater - position, 0)
    return lag
