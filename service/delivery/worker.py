"""Delivery: due ledger rows → hold → render → send → record, read top to bottom.

Like Alertmanager's notification pipeline, each stage does one thing:

    claim    Ledger.claim          due rows, under a short lease renewed while they are in flight
    hold     TargetBreaker.admit   a failing target's alerts wait while one of them probes it
    render   render                the event as the message the subscriber reads
    send     Notifier.send         Apprise, off the event loop
    record   Recorder              outcomes written back in batches, one transaction for many

A failing target backs off on its own schedule; other targets keep flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from config.settings import DeliverySettings
from consumers.pacing import wait_or_stop
from service.delivery.breaker import Admission, TargetBreaker
from service.delivery.observer import DeliveryObserver, Observers
from service.delivery.render import Message, Renderer
from service.delivery.send.notifier import DeliveryFailed, Notifier
from service.redaction import mask, scrub
from service.store import ClaimedDelivery, Store, explain, utcnow
from service.store.ledger import Ledger, Outcomes

log = structlog.get_logger("jobwire.delivery")


def backoff(
    attempt: int, settings: DeliverySettings, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before the next attempt: exponential, capped, with jitter so targets recover
    without a thundering herd (delay is between half and all of the exponential step)."""
    step = min(settings.backoff_cap_s, settings.backoff_base_s * 2.0 ** (attempt - 1))
    return step / 2 + rand() * step / 2


class Recorder:
    """The record stage: outcomes gather here and are written in one transaction every few
    milliseconds, instead of one transaction per alert."""

    def __init__(
        self,
        ledger: Ledger,
        interval_s: float = 0.02,
        most: int = 500,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.ledger = ledger
        self.observer = observer or Observers()
        self.interval_s = interval_s
        self.most = most
        self._outcomes = Outcomes()
        self._ids: set[int] = set()
        self._due = asyncio.Event()

    @property
    def unwritten(self) -> set[int]:
        """Alerts whose outcome is decided but not yet in the ledger: their lease must hold."""
        return set(self._ids)

    def sent(self, delivery_id: int, at: datetime) -> None:
        self._outcomes.sent.append((delivery_id, at))
        self._added(delivery_id)

    def retry(self, delivery_id: int, at: datetime, error: str) -> None:
        self._outcomes.retry.append((delivery_id, at, error))
        self._added(delivery_id)

    def dead(self, delivery_id: int, error: str) -> None:
        self._outcomes.dead.append((delivery_id, error))
        self._added(delivery_id)

    def defer(self, delivery_id: int, until: datetime) -> None:
        self._outcomes.deferred.append((delivery_id, until))
        self._added(delivery_id)

    def hold(self, target_id: int, until: datetime) -> None:
        """Every waiting alert of the target is due when its hold ends (the breaker's latest
        word on it wins), then one of them probes it."""
        self._outcomes.resumed_targets.discard(target_id)
        self._outcomes.held_targets[target_id] = until

    def kill(self, target_id: int, error: str) -> None:
        self._outcomes.dead_targets[target_id] = error

    def resume(self, target_id: int) -> None:
        self._outcomes.held_targets.pop(target_id, None)
        self._outcomes.resumed_targets.add(target_id)

    def _added(self, delivery_id: int) -> None:
        self._ids.add(delivery_id)
        if len(self._ids) >= self.most:
            self._due.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Write outcomes as they come until `stop`; then whatever is left."""
        while not stop.is_set():
            await wait_or_stop(self._due, self.interval_s)  # a batch is due, or it is time
            self._due.clear()
            await self.flush()
        await self.flush()

    async def flush(self) -> None:
        outcomes, ids = self._outcomes, self._ids
        if not outcomes:
            return
        self._outcomes, self._ids = Outcomes(), set()
        try:
            also_dead = await self.ledger.apply(outcomes)
        except Exception as exc:
            # The store is away: keep them for the next flush; their leases are renewed
            # meanwhile, so no other worker sends them again.
            self._merge(outcomes, ids)
            log.error("delivery.record_failed", alerts=len(ids), error=explain(exc))
            return
        for target_id, error in outcomes.dead_targets.items():
            died = also_dead.get(target_id, 0)
            log.error("delivery.target_dead", target_id=target_id, also_dead=died, error=error)
            self.observer.target_dead(target_id, error, died)

    def _merge(self, outcomes: Outcomes, ids: set[int]) -> None:
        mine = self._outcomes
        mine.sent[:0] = outcomes.sent
        mine.retry[:0] = outcomes.retry
        mine.dead[:0] = outcomes.dead
        mine.deferred[:0] = outcomes.deferred
        mine.held_targets = {**outcomes.held_targets, **mine.held_targets}
        mine.dead_targets = {**outcomes.dead_targets, **mine.dead_targets}
        mine.resumed_targets |= outcomes.resumed_targets
        self._ids |= ids


class DeliveryWorker:
    """Claims due alerts from the ledger and takes each through the stages, a bounded number
    at a time."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        settings: DeliverySettings,
        unsubscribe_url: Callable[[str], str] | None = None,
        observer: DeliveryObserver | None = None,
        renderer: Renderer | None = None,
        manage_url: Callable[[str], str] | None = None,
    ) -> None:
        self.ledger = store.ledger
        self.observer = observer or Observers()
        # The operator's templates, checked at start; jobwire's own when none is given.
        self.renderer = renderer or Renderer()
        self.notifier = notifier
        self.settings = settings
        self.unsubscribe_url = unsubscribe_url
        # A subscription's page, for digests (None: no web page to send readers to).
        self.manage_url = manage_url
        self.breaker = TargetBreaker(
            max_failures=settings.max_attempts,
            backoff=lambda failures: backoff(failures, settings),
            probe_timeout_s=settings.timeout_s,
            dead_hold_s=settings.backoff_cap_s,
        )
        self.recorder = Recorder(self.ledger, observer=self.observer)
        self._wake = asyncio.Event()
        # Claimed ahead, not started yet: one claim takes many rows, not one per free slot.
        self._queue: deque[Work] = deque()
        # Each send in flight, with what it carries; and how many go to each of those.
        self._in_flight: dict[asyncio.Task[None], Work] = {}
        self._sends_to: Counter[str] = Counter()
        # Claimed sends held back because what they share (`Work.shared`) had `per_target`
        # in flight, in claim order: each starts when one of those sends ends, taking turns
        # for free slots with the queue (`_start_queued`).
        self._held_back: dict[str, deque[Work]] = {}
        self._held_back_count = 0
        # A claim takes four times the slots' worth, and never fewer than 128 rows: its cost
        # is mostly its statement and its transaction on the loop's thread, whatever it
        # takes. At 8 in flight, claims of 32 came 45 times a second, the loop sending
        # nothing meanwhile (webhooks 1.22x with 128, alternated twice).
        self._claim_size = max(4 * settings.concurrency, 128)
        # At most this many per busy target or server: enough to fill its slots four times as
        # its sends end. The rest of what a claim took for it goes back to the ledger, in its
        # place (`_give_back`): it has a backlog there. Kept whole, two slow targets' backlogs
        # filled memory's places for held-back sends, and no one else's alert was claimed
        # until they drained; now those places fill only when busy targets also take every
        # slot.
        self._hold_most = 4 * min(settings.per_target, settings.concurrency)
        self._giving_back: list[int] = []
        # Busy targets and servers with a backlog in the ledger. Everyone's claim passes over
        # them; each is fed by claims of its own instead, `_hold_most` rows when it has room
        # and nothing held back (`_refill`), until one finds fewer: its backlog is sent. When
        # everyone's claim took them up again as soon as they had room, four slow targets'
        # backlogs, due before everyone else's alerts, took every claim, and others waited
        # until those backlogs were nearly sent.
        self._backlogs: dict[str, Backlog] = {}
        self._refill: set[str] = set()
        self._held_turn = True  # whose turn the next free slot is: held back, or the queue
        # A send ended whose target has sends held back: start one (no claim for it).
        self._freed = asyncio.Event()

    def wake(self) -> None:
        """New alerts were recorded: look for them now instead of at the next poll."""
        self._wake.set()

    @property
    def sends_in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def sends_held_back(self) -> int:
        """Claimed sends waiting in memory for a busy target or server (`Work.shared`)."""
        return self._held_back_count

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "delivery.started",
            concurrency=self.settings.concurrency,
            per_target=self.settings.per_target,
        )
        done = asyncio.Event()  # the stages behind the loop stop after it has drained
        helpers = [
            asyncio.create_task(self.recorder.run(done), name="delivery.record"),
            asyncio.create_task(self._renew_leases(done), name="delivery.leases"),
        ]
        loop = asyncio.get_running_loop()
        look_at = 0.0  # when to look for due rows next, woken or not
        # Digests come due on a clock, never because alerts were recorded or a send ended (a
        # digest row is recorded due later), so they are looked for on the poll alone: a
        # look on every wake was a second query before each claim of alerts.
        digests_at = 0.0
        more = True  # the last claim was full: there may be more due right now
        try:
            while not stop.is_set():
                woken = self._wake.is_set()
                self._wake.clear()
                self._freed.clear()
                now = loop.time()
                # Sends held back for busy targets do not keep others' alerts from being
                # claimed, up to a bound (a slow target's backlog is not all taken in memory).
                if (
                    len(self._queue) < self.settings.concurrency
                    and self._held_back_count < self._claim_size
                    and (woken or more or now >= look_at)
                ):
                    want = self._claim_size - len(self._queue)
                    digests = now >= digests_at
                    if digests:
                        digests_at = now + self.settings.poll_interval_s
                    claimed = await self._claim(want, digests=digests)
                    more = len(claimed) == want
                    look_at = now + self.settings.poll_interval_s
                    self._queue.extend(claimed)
                self._start_queued()
                if self._giving_back:
                    await self._give_back()
                if self._refill:
                    await self._refill_backlogs()
                    self._start_queued()
                may_claim = self._held_back_count < self._claim_size
                if self._queue and len(self._in_flight) >= self.settings.concurrency:
                    # Full: wait for a slot rather than polling.
                    await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                elif not (more and may_claim):
                    # Until the poll, new alerts, or a busy target's send ending; with too
                    # many held back there is nothing to poll for until one of those ends.
                    wait_s = max(0.0, look_at - loop.time()) if may_claim else None
                    await _first_of(stop, (self._wake, self._freed), wait_s)
            await self._drain()
        finally:
            done.set()
            await asyncio.gather(*helpers, return_exceptions=True)
            log.info("delivery.stopped")

    def _start_queued(self) -> None:
        """Start sends while slots are free, taking turns between sends held back for a
        target that has room again (claimed earlier) and the queue in claim order. With
        held-back sends always first, slow targets that took every slot took each one they
        freed again, and everyone else's alerts waited until their backlogs were sent."""
        while len(self._in_flight) < self.settings.concurrency:
            if self._held_turn:
                started = self._start_held() or self._start_from_queue()
            else:
                started = self._start_from_queue() or self._start_held()
            if not started:
                return
            self._held_turn = not self._held_turn

    def _start_held(self) -> bool:
        """Start one send held back for a target or server with room, the one that waited
        longest for its turn; False if none has room."""
        limit = self.settings.per_target
        shared = next((s for s in self._held_back if self._sends_to[s] < limit), None)
        if shared is None:
            return False
        held = self._held_back.pop(shared)  # back in at the end of the turns, or done
        self._held_back_count -= 1
        self._start(held.popleft(), shared)
        if held:
            self._held_back[shared] = held
        else:
            self._refill_if_room(shared)
        return True

    def _start_from_queue(self) -> bool:
        """Start the first queued send whose target has room and nothing held back before
        it; the others met on the way are held back for their target, or given back to the
        ledger when it already has `_hold_most` held back. False if none could start."""
        while self._queue:
            work = self._queue.popleft()
            shared = work.shared
            if self._sends_to[shared] < self.settings.per_target and shared not in self._held_back:
                self._start(work, shared)
                return True
            if len(held := self._held_back.setdefault(shared, deque())) < self._hold_most:
                held.append(work)
                self._held_back_count += 1
            else:
                self._giving_back += work.ids
                delivery = work.items[0].delivery
                backlog = self._backlogs.setdefault(shared, Backlog(via=delivery.sent_via))
                backlog.targets.add(delivery.target_id)
        return False

    def _refill_if_room(self, shared: str) -> None:
        """A target or server with a backlog in the ledger has room and nothing held back:
        claim its next rows now, not at the next poll."""
        if (
            shared in self._backlogs
            and shared not in self._held_back
            and self._sends_to[shared] < self.settings.per_target
        ):
            self._refill.add(shared)
            self._wake.set()

    async def _refill_backlogs(self) -> None:
        """Claim the next `_hold_most` rows of each backlog due a refill, held back for it
        (they start as it has room); a claim that finds fewer ends its backlog."""
        due, self._refill = self._refill, set()
        for shared in due:
            backlog = self._backlogs.get(shared)
            if backlog is None or shared in self._held_back:
                continue
            try:
                claimed = await self.ledger.claim(
                    self._hold_most,
                    self.settings.lease_s,
                    only_targets=() if backlog.via else backlog.targets,
                    only_via=backlog.via,
                )
            except Exception as exc:  # the store is down: try again at the next turn
                log.error("delivery.claim_failed", error=explain(exc))
                self._refill.add(shared)
                continue
            if len(claimed) < self._hold_most:
                del self._backlogs[shared]  # its targets are everyone's claim's again
            if claimed:
                self._held_back[shared] = deque(Work([item]) for item in claimed)
                self._held_back_count += len(claimed)

    async def _give_back(self) -> None:
        """Return claimed rows a busy target cannot take yet to the ledger, due as before; if
        the store is down, their leases run out and they come back all the same."""
        ids, self._giving_back = self._giving_back, []
        try:
            await self.ledger.release(ids)
        except Exception as exc:
            log.warning("delivery.give_back_failed", delivery_ids=ids, error=explain(exc))
            return
        log.debug("delivery.given_back", delivery_ids=ids)

    def _start(self, work: Work, shared: str) -> None:
        self._sends_to[shared] += 1
        task = asyncio.create_task(self._deliver(work))
        self._in_flight[task] = work
        task.add_done_callback(self._finished)

    def _waiting(self) -> list[Work]:
        """Claimed and not started: queued, or held back for a busy target."""
        return [*self._queue, *(work for held in self._held_back.values() for work in held)]

    async def _drain(self) -> None:
        """Let the alerts in flight finish; give the ones that do not back to the ledger, with
        those claimed but not started."""
        released = [row for work in self._waiting() for row in work.ids]
        self._queue.clear()
        self._held_back.clear()
        self._held_back_count = 0
        if self._in_flight:
            log.info("delivery.draining", in_flight=len(self._in_flight))
            _, late = await asyncio.wait(self._in_flight, timeout=self.settings.timeout_s)
            released += [row for task in late for row in self._in_flight[task].ids]
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.recorder.flush()
        if released:
            with contextlib.suppress(Exception):
                await self.ledger.release(released)
            log.warning("delivery.released", delivery_ids=released)

    def _finished(self, task: asyncio.Task[None]) -> None:
        # No wake: a free slot makes nothing due. The loop starts queued work when a slot
        # frees (it waits on the sends when full) and claims again when the last claim was
        # full; waking it here made it ask the ledger once more after every send, for nothing.
        # Only a send held back for this target is started at once (`_freed`, no claim), or,
        # for a target whose rows were given back and that now has room, a claim.
        work = self._in_flight.pop(task, None)
        if work is None:
            return
        shared = work.shared
        self._sends_to[shared] -= 1
        if not self._sends_to[shared]:
            del self._sends_to[shared]
        if shared in self._held_back:
            self._freed.set()
        else:
            self._refill_if_room(shared)

    async def _claim(self, limit: int, digests: bool) -> list[Work]:
        """Due digests first (each one send; looked for at each poll, they are few), then due
        alerts, `limit` sends in all."""
        lease = self.settings.lease_s
        try:
            work = []
            if digests:
                found = await self.ledger.claim_digests(limit, lease)
                work = [Work(d.items, d.digest_id) for d in found]
            if len(work) < limit:
                # A target with sends held back already has its turn in memory: its next
                # rows wait in the ledger, and the claim takes other targets' alerts instead of
                # filling up with a slow target's backlog while everyone else's wait behind it.
                # Targets that share a server of the operator's are passed over together: a
                # slow mail server's backlog is spread over everyone who signed up on the page.
                # Busy targets and servers with a backlog in the ledger are fed by claims of
                # their own (`_refill_backlogs`).
                held = [w.items[0].delivery for h in self._held_back.values() for w in h]
                backlogs = self._backlogs.values()
                alerts = await self.ledger.claim(
                    limit - len(work),
                    lease,
                    skip_targets={d.target_id for d in held}
                    | {t for b in backlogs for t in b.targets},
                    skip_via={d.sent_via for d in held if d.sent_via}
                    | {b.via for b in backlogs if b.via},
                )
                work.extend(Work([item]) for item in alerts)
        except Exception as exc:  # the store is down: keep the worker alive and try again
            log.error("delivery.claim_failed", error=explain(exc))
            return []
        return work

    async def _renew_leases(self, done: asyncio.Event) -> None:
        """Keep the leases of alerts in flight (or awaiting their record) from running out, so
        the lease can be short and a crashed worker's alerts come back quickly."""
        every = self.settings.lease_s / 3
        while not done.is_set():
            await wait_or_stop(done, every)
            held = {row for work in self._in_flight.values() for row in work.ids}
            held.update(row for work in self._waiting() for row in work.ids)
            held |= self.recorder.unwritten
            if held and not done.is_set():
                try:
                    await self.ledger.renew(sorted(held), self.settings.lease_s)
                except Exception as exc:
                    log.error("delivery.renew_failed", alerts=len(held), error=explain(exc))

    async def _deliver(self, work: Work) -> None:
        """One send through the stages: hold → render → send → record."""
        first = work.items[0].delivery
        alert = log.bind(
            delivery_id=first.id,
            subscription_id=first.subscription_id,
            event_id=first.event_id,
            target=mask(first.target),
        )
        if work.digest_id is not None:
            alert = alert.bind(
                digest_id=work.digest_id, events=[i.delivery.event_id for i in work.items]
            )
        admission = self.breaker.admit(first.target_id)
        if admission.verdict == "wait":
            assert admission.until is not None
            for item in work.items:
                self.recorder.defer(item.delivery.id, admission.until)
            return
        started = time.perf_counter()
        try:
            # Rendered inside the try: a template that fails on this event (an operator's,
            # past the check at start) is a failed send like any other, recorded and retried,
            # and it does not leave a probe of the breaker open for good.
            message = self._render(work)
            await self.notifier.send(first.target, message)
        except asyncio.CancelledError:
            self.breaker.abandoned(first.target_id, admission)
            raise
        except DeliveryFailed as exc:
            self._failed(work, admission, str(exc), alert, time.perf_counter() - started)
        except Exception as exc:  # a bug in a plugin must not stop other alerts
            error = scrub(f"{type(exc).__name__}: {exc}", first.target)
            self._failed(work, admission, error, alert, time.perf_counter() - started)
        else:
            send_s = time.perf_counter() - started
            if self.breaker.succeeded(first.target_id, admission):
                self.recorder.resume(first.target_id)
                alert.info("delivery.target_recovered")
                self.observer.target_recovered(first.target_id)
            now = utcnow()
            for item in work.items:
                self.recorder.sent(item.delivery.id, now)
            self.observer.alerts_sent(work.items, send_s)
            alert.info(
                "delivery.sent",
                attempt=first.attempts,
                send_ms=round(send_s * 1000, 1),
                latency_ms=_ms_since(first.created_at),
            )

    def _render(self, work: Work) -> Message:
        first = work.items[0]
        sub = first.delivery.subscription_id
        unsubscribe = self.unsubscribe_url(sub) if self.unsubscribe_url else None
        if work.digest_id is None:
            return self.renderer.instant(first.event, first.subscription_name, unsubscribe)
        events = [item.event for item in work.items]
        manage = self.manage_url(sub) if self.manage_url else None
        return self.renderer.digest(first.subscription_name, events, unsubscribe, manage)

    def _failed(
        self,
        work: Work,
        admission: Admission,
        error: str,
        alert: structlog.typing.FilteringBoundLogger,
        send_s: float,
    ) -> None:
        first = work.items[0].delivery
        verdict = self.breaker.failed(first.target_id, admission)
        attempts = max(item.delivery.attempts for item in work.items)
        dead = verdict.dead or attempts >= self.settings.max_attempts
        self.observer.alerts_failed(work.items, send_s, dead)
        if dead:
            # The target failed every attempt allowed: its waiting alerts would only fail too.
            for item in work.items:
                self.recorder.dead(item.delivery.id, error)
            self.recorder.kill(first.target_id, error)
            alert.error("delivery.dead", attempt=attempts, error=error)
            return
        for item in work.items:
            self.recorder.retry(item.delivery.id, verdict.retry_at, error)
        self.recorder.hold(first.target_id, verdict.retry_at)
        alert.warning(
            "delivery.retry_scheduled",
            attempt=attempts,
            next_at=verdict.retry_at.isoformat() + "Z",
            error=error,
        )


@dataclass(slots=True)
class Backlog:
    """A busy target's or server's rows given back to the ledger: the targets they are for,
    or the server they all go through (`Delivery.sent_via`, e.g. jobwire's own mail)."""

    via: str
    targets: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Work:
    """What one send carries: one alert, or a digest of every due alert of one target."""

    items: list[ClaimedDelivery]
    digest_id: int | None = None

    @property
    def ids(self) -> list[int]:
        return [item.delivery.id for item in self.items]

    @property
    def target(self) -> str:
        """The URL it goes to: one target."""
        return self.items[0].delivery.target

    @property
    def shared(self) -> str:
        """What its sends share, which `per_target` limits: the target's URL (two
        subscriptions' targets with one chat webhook share it), or the one server of the
        operator's that it goes through (jobwire's own mail, service/own_mail.py)."""
        via = self.items[0].delivery.sent_via
        return f"via:{via}" if via else self.target


def _ms_since(moment: datetime) -> float:
    return round((utcnow() - moment).total_seconds() * 1000, 1)


async def _first_of(
    stop: asyncio.Event, wakes: tuple[asyncio.Event, ...], wait_s: float | None
) -> None:
    waits = [asyncio.create_task(event.wait()) for event in (stop, *wakes)]
    try:
        await asyncio.wait(waits, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
