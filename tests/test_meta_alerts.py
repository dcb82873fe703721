"""Who hears about a dead target, and how often: the rules of service/operations/meta_alerts.py.

The store is a real SQLite file; the notifier records what would have been sent (the sends
themselves, through Apprise to real sinks, are in tests/integration/test_meta_alerts.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from service.delivery import DeliveryFailed, Message
from service.operations.meta_alerts import MetaAlerts
from service.operations.metrics import Metrics
from service.own_mail import own_mail_target
from service.store import Store
from service.subscriptions import SubscriptionIn

BROKEN = "json://hooks.example.com/broken"
OTHER = "json://hooks.example.com/other"
OPERATOR = "json://ops.example.com/jobwire"


class RecordingNotifier:
    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.sent: list[tuple[str, Message]] = []
        self.refuse = refuse

    async def send(self, target: str, message: Message) -> None:
        if target in self.refuse:
            raise DeliveryFailed("HTTP 500")
        self.sent.append((target, message))

    def to(self, target: str) -> list[str]:
        return [message.title for sent_to, message in self.sent if sent_to == target]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'jobwire.db'}")
    yield opened
    await opened.close()


async def subscription(store: Store, owner_name: str, notify: list[str]) -> list[int]:
    user = await store.accounts.add(owner_name, f"hash-of-{owner_name}")
    assert user is not None
    spec = SubscriptionIn.model_validate(
        {"name": "AP jobs", "employers": ["Nordstrom"], "notify": notify}
    )
    created = await store.subscriptions.add(spec, owner=user.id)
    return list(created.target_ids)


def meta_alerts(
    store: Store, notifier: RecordingNotifier, clock: Clock, mail: bool = False
) -> MetaAlerts:
    return MetaAlerts(
        store.target_state,
        notifier,
        Metrics(),
        operator_url=OPERATOR,
        owner_mail=mail,
        clock=clock,
    )


async def tell(alerts: MetaAlerts) -> None:
    """Send what the observer calls queued, as `run` would."""
    while not alerts._queue.empty():
        await alerts.handle(alerts._queue.get_nowait())


async def test_a_dead_target_is_told_once_a_day_to_the_owner_and_the_operator(
    store: Store,
) -> None:
    broken, _ = await subscription(store, "ana@example.com", [BROKEN, OTHER])
    notifier, clock = RecordingNotifier(), Clock()
    alerts = meta_alerts(store, notifier, clock)

    alerts.target_dead(broken, "HTTP 500 from hooks.example.com", 3)
    await tell(alerts)
    [owner_notice] = [m for t, m in notifier.sent if t == OTHER]
    assert owner_notice.title == "jobwire: alerts to one of your targets are failing"
    assert "HTTP 500 from hooks.example.com" in owner_notice.body
    assert "'AP jobs'" in owner_notice.body
    assert "4 alert(s) for it are marked undelivered" in owner_notice.body
    [operator_notice] = [m for t, m in notifier.sent if t == OPERATOR]
    assert operator_notice.title.startswith("jobwire: target dead: json://")
    assert "HTTP 500" in operator_notice.body
    assert "ana@example.com" in operator_notice.body

    # Probed again an hour later, dead again: nobody is told twice.
    clock.now += timedelta(hours=1)
    alerts.target_dead(broken, "HTTP 500", 1)
    await tell(alerts)
    assert len(notifier.sent) == 2

    # It recovers: one more notice each, once.
    alerts.target_recovered(broken)
    alerts.target_recovered(broken)
    await tell(alerts)
    assert notifier.to(OTHER)[-1] == "jobwire: your target works again"
    assert notifier.to(OPERATOR)[-1].startswith("jobwire: target recovered: json://")
    assert len(notifier.sent) == 4

    # Dead again the same day (it flaps): still quiet. A day after the first notice: told.
    alerts.target_dead(broken, "HTTP 500", 0)
    await tell(alerts)
    assert len(notifier.sent) == 4
    clock.now += timedelta(days=1)
    alerts.target_dead(broken, "HTTP 502", 0)
    await tell(alerts)
    assert len(notifier.sent) == 6
    assert "HTTP 502" in notifier.sent[-1][1].body


async def test_a_recovery_nobody_was_told_about_is_not_news(store: Store) -> None:
    broken, _ = await subscription(store, "ana@example.com", [BROKEN, OTHER])
    notifier = RecordingNotifier()
    alerts = meta_alerts(store, notifier, Clock())
    alerts.target_recovered(broken)
    await tell(alerts)
    assert notifier.sent == []


async def test_an_owner_without_another_working_target_is_emailed_at_their_user_name(
    store: Store,
) -> None:
    broken, _ = await subscription(store, "bob@example.com", [BROKEN, OTHER])
    notifier = RecordingNotifier(refuse=frozenset({OTHER}))  # the other target fails too
    alerts = meta_alerts(store, notifier, Clock(), mail=True)
    alerts.target_dead(broken, "HTTP 500", 0)
    await tell(alerts)
    # jobwire's own mail (the notifier sends this form through JOBWIRE_MAIL__URL).
    mailed = own_mail_target("bob@example.com")
    assert notifier.to(mailed) == ["jobwire: alerts to one of your targets are failing"]
    assert notifier.to(OTHER) == []
    assert len(notifier.to(OPERATOR)) == 1


async def test_an_owner_who_confirmed_a_long_address_on_the_web_page_is_emailed_there(
    store: Store,
) -> None:
    # Too long to be their user name (they get an id for one): only the address says it.
    address = "a.very.long.name.for.a.mailbox.at.this.company@asset-protection.example.com"
    user = await store.accounts.for_email(address)
    assert user.name != address
    spec = SubscriptionIn.model_validate({"employers": ["Nordstrom"], "notify": [BROKEN]})
    [broken] = (await store.subscriptions.add(spec, owner=user.id)).target_ids
    notifier = RecordingNotifier()
    alerts = meta_alerts(store, notifier, Clock(), mail=True)
    alerts.target_dead(broken, "HTTP 500", 0)
    await tell(alerts)
    assert notifier.to(own_mail_target(address)) == [
        "jobwire: alerts to one of your targets are failing"
    ]


async def test_an_owner_who_cannot_be_reached_is_said_in_the_log_and_the_operator_is_told(
    store: Store,
) -> None:
    [broken] = await subscription(store, "carol", [BROKEN])  # not an email address
    notifier = RecordingNotifier()
    metrics = Metrics()
    alerts = MetaAlerts(
        store.target_state,
        notifier,
        metrics,
        operator_url=OPERATOR,
        owner_mail=True,
        clock=Clock(),
    )
    alerts.target_dead(broken, "HTTP 500", 0)
    await tell(alerts)
    assert [target for target, _ in notifier.sent] == [OPERATOR]
    skipped = metrics.registry.get_sample_value(
        "jobwire_meta_alerts_total", {"recipient": "owner", "kind": "dead", "outcome": "skipped"}
    )
    assert skipped == 1


async def test_two_instances_tell_a_dead_target_once_between_them(store: Store) -> None:
    [broken] = await subscription(store, "dan@example.com", [BROKEN])
    notifier = RecordingNotifier()
    first, second = (meta_alerts(store, notifier, Clock()) for _ in range(2))
    first.target_dead(broken, "HTTP 500", 0)
    second.target_dead(broken, "HTTP 500", 0)
    await tell(first)
    await tell(second)
    assert len(notifier.to(OPERATOR)) == 1  # the store says it was told
