"""Whether the store answers, watched all the time, and the ledger's rows by status.

Every `interval_s` the watch pings the store; when it stops answering jobwire logs
`store.lost` once, and `store.restored` once when it answers again (readiness asks the store
itself at each request). Every `ledger_interval_s` it also counts the ledger's rows by status
for `jobwire_ledger_rows`: a GROUP BY over the whole ledger, so not at every scrape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from consumers.pacing import wait_or_stop
from service.operations.metrics import Metrics
from service.store import Store, explain

log = structlog.get_logger("jobwire.store")

PING_INTERVAL_S = 2.0
PING_TIMEOUT_S = 5.0
LEDGER_INTERVAL_S = 15.0


class StoreWatch:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        interval_s: float = PING_INTERVAL_S,
        ledger_interval_s: float = LEDGER_INTERVAL_S,
        timeout_s: float = PING_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.interval_s = interval_s
        self.ledger_interval_s = ledger_interval_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.reachable = True  # it answered at start, or the service would not have started
        self._lost_at: float | None = None
        self._counted_at: float | None = None
        metrics.store_reachable(True)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check()
            await wait_or_stop(stop, self.interval_s)

    async def check(self) -> None:
        """Ping the store (and count the ledger when that is due); say what changed.

        Only the ping says whether the store is reachable: counting a large ledger can take
        longer than a ping may, and a slow count is not an outage. The count is due once per
        `ledger_interval_s` whether it succeeded or not, so a slow one is not run again at
        every ping."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.store.ping()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc)
            return
        self._answered()
        now = self.clock()
        if self._counted_at is not None and now - self._counted_at < self.ledger_interval_s:
            return
        self._counted_at = now
        try:
            self.metrics.ledger_counts(await self.store.ledger.counts())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("store.ledger_count_failed", error=explain(exc))

    def _failed(self, exc: Exception) -> None:
        if not self.reachable:
            return
        self.reachable = False
        self._lost_at = self.clock()
        self.metrics.store_reachable(False)
        message = explain(exc) if not isinstance(exc, TimeoutError) else None
        log.error(
            "store.lost",
            error=message or f"no answer within {self.timeout_s:g} s",
            hint="jobwire keeps what it holds, retries, and says when the store is back",
        )

    def _answered(self) -> None:
        if self.reachable:
            return
        self.reachable = True
        self.metrics.store_reachable(True)
        down_s = self.clock() - self._lost_at if self._lost_at is not None else 0.0
        self._lost_at = None
        log.info("store.restored", down_s=round(down_s, 1))
