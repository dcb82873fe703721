"""The store's health as the operator sees it: reachable or not, from the ping alone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from service.operations.health import StoreWatch
from service.operations.metrics import Metrics


@dataclass
class SlowLedger:
    """A ledger whose count takes longer than a ping may (a large ledger on PostgreSQL)."""

    delay_s: float
    counted: int = 0

    async def counts(self) -> dict[str, int]:
        self.counted += 1
        await asyncio.sleep(self.delay_s)
        return {"pending": 1}


@dataclass
class AnsweringStore:
    ledger: SlowLedger
    pings: int = 0
    down: bool = False

    async def ping(self) -> None:
        self.pings += 1
        if self.down:
            raise ConnectionError("connection refused")


def store_up(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("jobwire_store_up")


async def test_a_slow_ledger_count_is_not_an_outage_and_is_not_run_at_every_ping() -> None:
    store = AnsweringStore(SlowLedger(delay_s=0.3))
    metrics = Metrics()
    watch = StoreWatch(store, metrics, ledger_interval_s=60, timeout_s=0.1)  # type: ignore[arg-type]

    for _ in range(3):
        await watch.check()

    assert watch.reachable
    assert store_up(metrics) == 1.0
    assert store.ledger.counted == 1  # once per interval, not once per ping


async def test_a_store_that_stops_answering_is_down_until_it_answers_again() -> None:
    store = AnsweringStore(SlowLedger(delay_s=0))
    metrics = Metrics()
    watch = StoreWatch(store, metrics, ledger_interval_s=60, timeout_s=0.1)  # type: ignore[arg-type]

    store.down = True
    await watch.check()
    assert not watch.reachable
    assert store_up(metrics) == 0.0
    store.down = False
    await watch.check()
    assert watch.reachable
    assert store_up(metrics) == 1.0
