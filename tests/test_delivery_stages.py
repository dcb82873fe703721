"""The delivery stages on their own: the breaker, and the worker driven by a fake ledger and a
fake notifier, so each behaviour is checked without a database or a network."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from jinja2 import UndefinedError
from structlog.testing import capture_logs

from config.settings import DeliverySettings
from consumers.events import Event, JobPosting
from service.delivery import Admission, DeliveryFailed, DeliveryWorker, Message, TargetBreaker
from service.delivery.render import Renderer
from service.operations.metrics import Metrics
from service.own_mail import own_mail_target, sent_via
from service.store import ClaimedDelivery, Delivery, utcnow
from service.store.ledger import Outcomes

T0 = datetime(2026, 11, 25, 12, 0, 0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def breaker(clock: Clock, max_failures: int = 3) -> TargetBreaker:
    return TargetBreaker(
        max_failures=max_failures,
        backoff=lambda failures: 10.0 * failures,
        probe_timeout_s=30,
        dead_hold_s=300,
        clock=clock,
    )


def test_a_target_that_fails_is_held_then_probed_by_one_alert_at_a_time() -> None:
    clock = Clock()
    held = breaker(clock)
    first = held.admit(7)
    assert first.verdict == "send"
    verdict = held.failed(7, first)
    assert (verdict.dead, verdict.retry_at) == (False, T0 + timedelta(seconds=10))

    waiting = held.admit(7)
    assert (waiting.verdict, waiting.until) == ("wait", T0 + timedelta(seconds=10))
    assert held.admit(8).verdict == "send"  # other targets flow

    clock.now = T0 + timedelta(seconds=11)
    probe = held.admit(7)
    assert probe.verdict == "probe"
    # While the probe is in flight, later alerts wait for its answer, to a time still ahead:
    # never the hold's end, which is already past and would make them due again at once.
    second, third = held.admit(7), held.admit(7)
    assert second.verdict == third.verdict == "wait"
    assert second.until is not None
    assert second.until > clock.now
    assert held.succeeded(7, probe)  # the probe got through: the hold ends
    assert held.admit(7).verdict == "send"


def test_failed_probes_back_off_and_the_last_one_declares_the_target_dead() -> None:
    clock = Clock()
    held = breaker(clock, max_failures=3)
    held.failed(7, held.admit(7))
    # An alert already in flight when the target first failed does not count the outage twice.
    assert held.failed(7, Admission("send")).failures == 1
    clock.now += timedelta(seconds=11)
    second = held.failed(7, held.admit(7))
    assert (second.failures, second.dead) == (2, False)
    assert second.retry_at == clock.now + timedelta(seconds=20)
    clock.now += timedelta(seconds=21)
    third = held.failed(7, held.admit(7))
    assert (third.failures, third.dead) == (3, True)
    assert held.admit(7).verdict == "wait"  # dead targets are probed once per longest backoff


def test_an_abandoned_probe_lets_another_alert_probe() -> None:
    clock = Clock()
    held = breaker(clock)
    held.failed(7, held.admit(7))
    clock.now += timedelta(seconds=11)
    probe = held.admit(7)
    held.abandoned(7, probe)
    assert held.admit(7).verdict == "probe"


# -- the worker, with a fake ledger and notifier ---------------------------------------------


@dataclass
class FakeLedger:
    """A ledger in memory: rows due now are claimed, outcomes are applied as the real one does."""

    rows: dict[int, dict[str, object]] = field(default_factory=dict)
    urls: dict[int, str] = field(default_factory=dict)  # a target's URL, if not the usual
    claims: int = 0
    digest_claims: int = 0
    applied: list[Outcomes] = field(default_factory=list)
    renewed: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)

    def add(self, target_id: int, count: int) -> None:
        for _ in range(count):
            row = len(self.rows) + 1
            self.rows[row] = {"target": target_id, "status": "pending", "due": utcnow(), "n": 0}

    async def claim_digests(self, limit: int, lease_s: float) -> list[object]:
        self.digest_claims += 1
        return []

    async def claim(
        self,
        limit: int,
        lease_s: float,
        skip_targets: Collection[int] = (),
        skip_via: Collection[str] = (),
        only_targets: Collection[int] = (),
        only_via: str = "",
    ) -> list[ClaimedDelivery]:
        self.claims += 1
        now = utcnow()
        due = [
            r
            for r, row in self.rows.items()
            if row["status"] == "pending"
            and row["due"] <= now  # type: ignore[operator]
            and row["target"] not in skip_targets
            and sent_via(self.url(int(row["target"]))) not in skip_via  # type: ignore[call-overload]
            and (not only_targets or row["target"] in only_targets)
            and (not only_via or sent_via(self.url(int(row["target"]))) == only_via)  # type: ignore[call-overload]
        ][:limit]
        claimed = []
        for r in due:
            row = self.rows[r]
            row["status"] = "sending"
            row["n"] = int(row["n"]) + 1  # type: ignore[call-overload]
            claimed.append(self._claimed(r, row))
        return claimed

    def url(self, target: int) -> str:
        return self.urls.get(target, f"json://hooks.example.com/{target}")

    def _claimed(self, r: int, row: dict[str, object]) -> ClaimedDelivery:
        target = int(row["target"])  # type: ignore[call-overload]
        event = JobPosting(id=f"e{r}", employer="ACME", title="Clerk", city="Portland")
        return ClaimedDelivery(
            delivery=Delivery(
                id=r,
                subscription_id="s" * 32,
                target_id=target,
                target=self.url(target),
                event_kind="posting",
                event_id=event.id,
                status="sending",
                attempts=int(row["n"]),  # type: ignore[call-overload]
                next_attempt_at=utcnow(),
                last_error=None,
                created_at=utcnow(),
                sent_at=None,
                sent_via=sent_via(self.url(target)),
            ),
            event=event,
            subscription_name="",
            scheme="json",
        )

    async def apply(self, outcomes: Outcomes) -> dict[int, int]:
        self.applied.append(outcomes)
        for r, _ in outcomes.sent:
            self.rows[r]["status"] = "sent"
        for r, at, _ in outcomes.retry:
            self.rows[r].update(status="pending", due=at)
        for r, at in outcomes.deferred:
            self.rows[r].update(status="pending", due=at, n=int(self.rows[r]["n"]) - 1)  # type: ignore[call-overload]
        for r, _ in outcomes.dead:
            self.rows[r]["status"] = "dead"
        also: dict[int, int] = {target: 0 for target in outcomes.dead_targets}
        for row in self.rows.values():
            if row["status"] != "pending":
                continue
            if row["target"] in outcomes.dead_targets:
                row["status"] = "dead"
                also[int(row["target"])] += 1
            elif row["target"] in outcomes.held_targets:
                row["due"] = outcomes.held_targets[row["target"]]  # type: ignore[index]
            elif row["target"] in outcomes.resumed_targets:
                row["due"] = utcnow()
        return also

    async def renew(self, delivery_ids: Sequence[int], lease_s: float) -> None:
        self.renewed.extend(delivery_ids)

    async def release(self, delivery_ids: Sequence[int]) -> None:
        self.released.extend(delivery_ids)
        for r in delivery_ids:  # pending again, in its place, the attempt not counted
            row = self.rows[r]
            if row["status"] == "sending":
                row.update(status="pending", n=int(row["n"]) - 1)  # type: ignore[call-overload]

    def statuses(self) -> Counter[str]:
        return Counter(str(row["status"]) for row in self.rows.values())


@dataclass
class FakeStore:
    ledger: FakeLedger


class FakeNotifier:
    """Answers per target: ok, a failure, or waits on a gate; counts sends in flight."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.gates: dict[str, asyncio.Event] = {}
        self.sent: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight: Counter[str] = Counter()
        self.most_at_once = 0  # sends in flight to any target, together

    async def send(self, target: str, message: Message) -> None:
        self.in_flight[target] += 1
        self.most_in_flight[target] = max(self.most_in_flight[target], self.in_flight[target])
        self.most_at_once = max(self.most_at_once, sum(self.in_flight.values()))
        try:
            if target in self.gates:
                await self.gates[target].wait()
            if target in self.failing:
                raise DeliveryFailed("HTTP 500")
            self.sent[target] += 1
        finally:
            self.in_flight[target] -= 1


def settings(**changes: object) -> DeliverySettings:
    base = {
        "concurrency": 8,
        "max_attempts": 3,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.2,
        "poll_interval_s": 0.01,
        "lease_s": 0.3,
        "timeout_s": 0.5,
    }
    return DeliverySettings.model_validate({**base, **changes})


def a_worker(ledger: FakeLedger, notifier: FakeNotifier, **changes: object) -> DeliveryWorker:
    """The real worker on the fakes, with `settings(**changes)`."""
    return DeliveryWorker(FakeStore(ledger), notifier, settings(**changes))  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    """Wait for state the fakes offer nothing to await on."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running(worker: DeliveryWorker) -> AsyncIterator[None]:
    """The worker runs for the block, and has stopped (drained) when it ends."""
    stop_worker = asyncio.Event()
    task = asyncio.create_task(worker.run(stop_worker))
    try:
        yield
    finally:
        stop_worker.set()
        await asyncio.wait_for(task, 5)


async def run_until(worker: DeliveryWorker, done: Callable[[], bool]) -> None:
    async with running(worker):
        await until(done)


async def test_every_alert_is_sent_once_and_outcomes_are_written_in_batches() -> None:
    ledger, notifier = FakeLedger(), FakeNotifier()
    ledger.add(target_id=1, count=200)
    worker = a_worker(ledger, notifier)

    await run_until(worker, lambda: ledger.statuses()["sent"] == 200)

    assert notifier.sent["json://hooks.example.com/1"] == 200
    assert len(ledger.applied) < 200 / 4  # many alerts per write, not one write per alert


async def test_digests_are_looked_for_on_the_poll_not_before_every_claim_of_alerts() -> None:
    ledger, notifier = FakeLedger(), FakeNotifier()
    ledger.add(target_id=1, count=1000)
    # A long poll: everything here moves by wakes (alerts recorded, sends ended).
    worker = a_worker(ledger, notifier, poll_interval_s=30)

    await run_until(worker, lambda: ledger.statuses()["sent"] == 1000)

    assert ledger.claims > 5
    # Before, each of those claims of alerts first asked for due digests: a query for
    # nothing on the path of every alert.
    assert ledger.digest_claims == 1


async def test_a_send_that_ends_does_not_send_the_worker_back_to_the_ledger() -> None:
    ledger, notifier = FakeLedger(), FakeNotifier()
    ledger.add(target_id=1, count=20)
    worker = a_worker(ledger, notifier, poll_interval_s=30)

    await run_until(worker, lambda: ledger.statuses()["sent"] == 20)

    # One claim took all 20 (fewer than it asked for: nothing else was due); before, every
    # send that ended woke the worker into another claim, a query per alert for nothing.
    assert ledger.claims == 1


async def test_few_sends_in_flight_still_claim_many_alerts_at_a_time() -> None:
    """An operator who keeps 8 sends in flight: a claim is a statement and a transaction on
    the event loop whatever it takes, so it must not take only a few slots' worth. Claims of
    32 came 45 times a second at 1,200 webhooks a second, the loop sending nothing
    meanwhile."""
    ledger, notifier = FakeLedger(), FakeNotifier()
    for target in range(1, 31):
        ledger.add(target_id=target, count=10)
    worker = a_worker(ledger, notifier, concurrency=8, poll_interval_s=30)

    await run_until(worker, lambda: ledger.statuses()["sent"] == 300)

    assert ledger.claims <= 4  # 128 rows a claim: three, and one that finds fewer
    assert notifier.most_at_once <= 8


async def test_a_held_target_is_probed_by_one_alert_while_the_rest_wait_without_spinning() -> None:
    ledger, notifier = FakeLedger(), FakeNotifier()
    down = "json://hooks.example.com/1"
    ledger.add(target_id=1, count=30)
    ledger.add(target_id=2, count=30)
    notifier.failing.add(down)
    worker = a_worker(ledger, notifier, max_attempts=50)
    async with running(worker):
        # The healthy target's alerts all go, while the failing one's wait.
        await until(lambda: notifier.sent["json://hooks.example.com/2"] == 30)
        # Now the target answers slowly: one probe is in flight for a while.
        notifier.failing.discard(down)
        notifier.gates[down] = asyncio.Event()
        await until(lambda: notifier.in_flight[down] == 1)
        claims_before = ledger.claims
        await asyncio.sleep(0.3)
        assert notifier.in_flight[down] == 1  # one probe, never two
        # The alerts waiting for it are not claimed and deferred over and over meanwhile.
        assert ledger.claims - claims_before < 40
        notifier.gates[down].set()
        await until(lambda: ledger.statuses()["sent"] == 60)
    assert notifier.most_in_flight[down] == 1
    assert notifier.sent[down] == 30


async def test_a_target_that_keeps_failing_dies_with_its_waiting_alerts_and_others_flow() -> None:
    ledger, notifier = FakeLedger(), FakeNotifier()
    ledger.add(target_id=1, count=10)
    ledger.add(target_id=2, count=10)
    notifier.failing.add("json://hooks.example.com/1")
    worker = a_worker(ledger, notifier)

    await run_until(worker, lambda: ledger.statuses() == Counter({"sent": 10, "dead": 10}))
    assert notifier.sent["json://hooks.example.com/2"] == 10
    assert any(o.dead_targets for o in ledger.applied)


async def test_a_slow_send_keeps_its_lease_and_a_stop_gives_it_back() -> None:
    ledger, notifier = FakeLedger(), FakeNotifier()
    ledger.add(target_id=1, count=1)
    notifier.gates["json://hooks.example.com/1"] = asyncio.Event()  # never answers
    worker = a_worker(ledger, notifier, lease_s=0.15, timeout_s=0.5)
    async with running(worker):
        # Renewed every third of the lease while in flight, long past the lease itself.
        await until(lambda: ledger.renewed.count(1) >= 2)
    assert ledger.released == [1]


async def test_one_target_gets_at_most_its_limit_at_once_while_other_targets_flow() -> None:
    """32 sends in flight in all, but a chat webhook or a mail relay meets more than a few at
    once with refusals: one target URL gets `per_target`, and its other alerts wait their
    turn without holding up anyone else's."""
    ledger, notifier = FakeLedger(), FakeNotifier()
    busy = "json://hooks.example.com/1"
    ledger.add(target_id=1, count=40)
    for target in range(2, 12):
        ledger.add(target_id=target, count=5)
    notifier.gates[busy] = asyncio.Event()  # slow: its sends stay in flight
    worker = a_worker(ledger, notifier, concurrency=32, per_target=4, poll_interval_s=30)
    async with running(worker):
        # Every other target's alerts go while the busy one's wait.
        await until(lambda: sum(notifier.sent.values()) == 50)
        assert notifier.in_flight[busy] == 4
        # Enough to fill its slots again wait in memory and keep their leases; the rest went
        # back to the ledger, in their place, and do not send the worker back to it.
        claims = ledger.claims
        await until(lambda: set(range(1, 21)) <= set(ledger.renewed))
        assert ledger.released == list(range(21, 41))
        await asyncio.sleep(0.2)
        assert ledger.claims == claims
        notifier.gates[busy].set()
        await until(lambda: ledger.statuses()["sent"] == 90)
    assert notifier.most_in_flight[busy] == 4
    assert notifier.sent[busy] == 40


async def test_a_slow_targets_backlog_does_not_keep_other_targets_alerts_waiting() -> None:
    """One subscriber's slow webhook with hundreds of alerts due ahead of everyone else's:
    the worker takes no more of its backlog than a claim's worth, and other targets' alerts,
    due later, are sent while the slow one is still busy."""
    ledger, notifier = FakeLedger(), FakeNotifier()
    slow = "json://hooks.example.com/1"
    ledger.add(target_id=1, count=600)  # more than the worker holds back (a claim: 128)
    ledger.add(target_id=2, count=5)
    notifier.gates[slow] = asyncio.Event()  # its sends stay in flight
    worker = a_worker(ledger, notifier, concurrency=32, per_target=4)
    async with running(worker):
        await until(lambda: notifier.sent["json://hooks.example.com/2"] == 5)
        assert notifier.sent[slow] == 0
        # Only a claim's worth of the slow backlog was taken from the ledger.
        assert ledger.statuses()["pending"] >= 600 - 128
        notifier.gates[slow].set()
        await until(lambda: ledger.statuses()["sent"] == 605, within_s=10)
    assert notifier.most_in_flight[slow] == 4


async def test_alerts_by_jobwires_own_mail_share_one_limit_for_the_operators_server() -> None:
    """Each person who signed up on the page has a target of their own, but all of them go
    through the operator's one mail server: it meets `per_target` at once, not that many per
    person."""
    ledger, notifier = FakeLedger(), FakeNotifier()
    for target, person in enumerate(("ana", "bo", "cy"), start=1):
        ledger.urls[target] = own_mail_target(f"{person}@example.com")
        ledger.add(target_id=target, count=10)
        notifier.gates[ledger.urls[target]] = asyncio.Event()
    worker = a_worker(ledger, notifier, concurrency=32, per_target=4)
    async with running(worker):
        await until(lambda: sum(notifier.in_flight.values()) >= 4)
        await asyncio.sleep(0.1)
        assert sum(notifier.in_flight.values()) == 4  # not 4 for each of the three
        for gate in notifier.gates.values():
            gate.set()
        await until(lambda: ledger.statuses()["sent"] == 30)
    assert notifier.most_at_once == 4


async def test_a_slow_mail_servers_backlog_spread_over_many_people_keeps_no_one_else_waiting() -> (
    None
):
    """The operator's mail server is slow, and 300 people who signed up on the page have
    alerts due through it, ahead of another subscriber's webhook. Each person's target is
    busy only through the shared server, so the claim passes over all of them together; one
    target at a time, their backlog filled the places the worker holds sends in."""
    ledger, notifier = FakeLedger(), FakeNotifier()
    for person in range(1, 301):
        ledger.urls[person] = own_mail_target(f"p{person}@example.com")
        ledger.add(target_id=person, count=2)
        notifier.gates[ledger.urls[person]] = asyncio.Event()  # the server keeps them waiting
    hook = 301
    ledger.add(target_id=hook, count=5)
    worker = a_worker(ledger, notifier, concurrency=32, per_target=4)
    metrics = Metrics()
    metrics.watch_sends(lambda: worker.sends_in_flight, lambda: worker.sends_held_back)
    async with running(worker):
        await until(lambda: notifier.sent[ledger.url(hook)] == 5)
        assert sum(notifier.in_flight.values()) == 4
        assert ledger.statuses()["pending"] >= 600 - 128  # no more than a claim's worth taken
        # What the operator sees meanwhile: the mail server's 4 under way, the rest waiting.
        sample = metrics.registry.get_sample_value
        assert sample("jobwire_delivery_in_flight") == 4
        # Of the first claim's rest, enough to fill the server's slots four times.
        assert sample("jobwire_delivery_held_back") == 4 * 4
        for gate in notifier.gates.values():
            gate.set()
        await until(lambda: ledger.statuses()["sent"] == 605, within_s=10)


async def test_a_slow_chat_webhook_shared_by_many_subscriptions_keeps_no_one_else_waiting() -> None:
    """A team's chat webhook answers slowly, and ten subscriptions send to it, each with a
    backlog. Their sends share one limit, so all but a few of what a claim takes for them
    must wait; kept in memory, one claim's worth filled the places the worker holds sends in,
    and another subscriber's alerts waited until the slow webhook had worked through it."""
    ledger, notifier = FakeLedger(), FakeNotifier()
    team = "json://hooks.example.com/team"
    notifier.gates[team] = asyncio.Event()  # the webhook keeps every send waiting
    for subscription_target in range(1, 11):
        ledger.urls[subscription_target] = team
        ledger.add(target_id=subscription_target, count=60)
    other = 11
    ledger.add(target_id=other, count=5)
    worker = a_worker(ledger, notifier, concurrency=32, per_target=4)
    async with running(worker):
        await until(lambda: notifier.sent[ledger.url(other)] == 5)
        assert notifier.in_flight[team] == 4
        # What is not held for the webhook went back to the ledger, in its place.
        assert worker.sends_held_back == 4 * 4  # its limit, four times over
        await until(lambda: ledger.statuses()["pending"] == 600 - 4 - 16)
        notifier.gates[team].set()
        await until(lambda: ledger.statuses()["sent"] == 605, within_s=10)


async def test_two_slow_targets_with_backlogs_keep_no_one_else_waiting() -> None:
    """Each slow target keeps a few of its alerts in memory for its next free slot, not a
    claim's worth: two of them held back everything the worker may hold, and it claimed
    nothing more until they drained."""
    ledger, notifier = FakeLedger(), FakeNotifier()
    for slow in (1, 2):
        ledger.add(target_id=slow, count=200)
        notifier.gates[ledger.url(slow)] = asyncio.Event()
    other = 3
    ledger.add(target_id=other, count=5)
    worker = a_worker(ledger, notifier, concurrency=32, per_target=8)
    async with running(worker):
        await until(lambda: notifier.sent[ledger.url(other)] == 5)
        for gate in notifier.gates.values():
            gate.set()
        await until(lambda: ledger.statuses()["sent"] == 405, within_s=10)


async def test_slow_targets_that_take_every_slot_leave_turns_for_other_targets_alerts() -> None:
    """Four slow targets with backlogs have 8 sends in flight each: every one of the 32 slots.
    Each slot they free is not all theirs again: their held-back sends and the claimed alerts
    of others take turns, so others' alerts go within a few of the slow sends, not after the
    slow backlogs, which took every freed slot first."""
    ledger = FakeLedger()

    class Slow(FakeNotifier):
        async def send(self, target: str, message: Message) -> None:
            if "/slow" in target:
                await asyncio.sleep(0.02)
            await super().send(target, message)

    notifier = Slow()
    for slow in range(1, 5):
        ledger.urls[slow] = f"json://hooks.example.com/slow{slow}"
        ledger.add(target_id=slow, count=100)
    other = 5
    ledger.add(target_id=other, count=5)
    worker = a_worker(ledger, notifier, concurrency=32, per_target=8)
    async with running(worker):
        await until(lambda: notifier.sent[ledger.url(other)] == 5)
        slow_sent = sum(n for url, n in notifier.sent.items() if "/slow" in url)
        assert slow_sent <= 48  # of 400: one round of the slow sends and a half (it was 96)
        await until(lambda: ledger.statuses()["sent"] == 405, within_s=10)


@dataclass
class LedgerDownForBacklogs(FakeLedger):
    """A ledger whose next claims for one target or server only (a backlog's own) fail."""

    down_for: int = 0

    async def claim(self, limit: int, lease_s: float, **which: Any) -> list[ClaimedDelivery]:
        if (which.get("only_targets") or which.get("only_via")) and self.down_for:
            self.down_for -= 1
            raise ConnectionError("the store went away")
        return await super().claim(limit, lease_s, **which)


async def test_a_backlog_whose_own_claim_fails_is_claimed_again_and_sent_in_full() -> None:
    """The store goes away just as a busy target's backlog needs its next rows: the claim is
    tried again at a later turn, and the whole backlog is sent, each alert once."""
    ledger, notifier = LedgerDownForBacklogs(down_for=3), FakeNotifier()
    slow = "json://hooks.example.com/1"
    ledger.add(target_id=1, count=300)
    notifier.gates[slow] = asyncio.Event()
    worker = a_worker(ledger, notifier, concurrency=32, per_target=4)
    with capture_logs() as logs:
        async with running(worker):
            await until(lambda: notifier.in_flight[slow] == 4)  # busy: the rest is its backlog
            notifier.gates[slow].set()
            await until(lambda: ledger.statuses()["sent"] == 300, within_s=10)
    assert ledger.down_for == 0  # its own claims did fail, three times
    assert notifier.sent[slow] == 300
    assert all(row["n"] == 1 for row in ledger.rows.values())  # each claimed and sent once
    failed = [line for line in logs if line["event"] == "delivery.claim_failed"]
    assert len(failed) == 3


async def test_a_stop_gives_back_the_alerts_waiting_for_a_busy_target() -> None:
    ledger, notifier = FakeLedger(), FakeNotifier()
    ledger.add(target_id=1, count=10)
    notifier.gates["json://hooks.example.com/1"] = asyncio.Event()  # never answers
    worker = a_worker(ledger, notifier, concurrency=32, per_target=2, timeout_s=0.2)
    async with running(worker):
        await until(lambda: notifier.in_flight["json://hooks.example.com/1"] == 2)
    # The two in flight (cancelled at the timeout) and the eight waiting their turn.
    assert sorted(ledger.released) == list(range(1, 11))


@pytest.mark.parametrize("failure", [DeliveryFailed("HTTP 500"), RuntimeError("plugin bug")])
async def test_a_failure_is_retried_with_its_reason(failure: Exception) -> None:
    ledger = FakeLedger()
    ledger.add(target_id=1, count=1)

    class Once(FakeNotifier):
        async def send(self, target: str, message: Message) -> None:
            if not self.sent:
                self.sent["failed"] += 1
                raise failure
            await super().send(target, message)

    notifier = Once()
    worker = a_worker(ledger, notifier)
    await run_until(worker, lambda: ledger.statuses()["sent"] == 1)
    (retry,) = [r for o in ledger.applied for r in o.retry]
    assert str(failure) in retry[2]


async def test_a_template_that_fails_on_one_alert_fails_that_send_and_the_target_goes_on() -> None:
    ledger, notifier = FakeLedger(), FakeNotifier()
    ledger.add(target_id=1, count=5)

    class BrokenOnce(Renderer):
        broke = False

        def instant(
            self, event: Event, subscription_name: str = "", unsubscribe_url: str | None = None
        ) -> Message:
            if not self.broke:
                self.broke = True
                raise UndefinedError("'posting' has no attribute 'salary'")
            return super().instant(event, subscription_name, unsubscribe_url)

    worker = DeliveryWorker(
        FakeStore(ledger),  # type: ignore[arg-type]
        notifier,
        settings(),
        renderer=BrokenOnce(),
    )
    await run_until(worker, lambda: ledger.statuses()["sent"] == 5)
    (retry,) = [r for o in ledger.applied for r in o.retry]
    assert "salary" in retry[2]
