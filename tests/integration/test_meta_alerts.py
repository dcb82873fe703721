"""Meta-alerts with real parts: a webhook sink that fails, then recovers. Its owner hears about
it through their other target (or by email, through a real SMTP sink, when there is none) and
the operator through JOBWIRE_OPERATOR__NOTIFY: once when it dies, once when it recovers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.settings import DeliverySettings, MailSettings, OperatorSettings
from devstack.kafka import KafkaBroker
from devstack.sinks import HttpSink, SmtpSink
from service.store import Store
from service.subscriptions import SubscriptionIn
from tests.conftest import make_settings
from tests.integration.conftest import chat_target, eventually, posting, publish_raw, running

pytestmark = pytest.mark.integration

DEAD = "jobwire: alerts to one of your targets are failing"
RECOVERED = "jobwire: your target works again"


async def owned_subscription(store: Store, owner: str, employer: str, notify: list[str]) -> None:
    user = await store.accounts.add(owner, f"hash-of-{owner}")
    assert user is not None
    spec = SubscriptionIn.model_validate(
        {"name": f"{employer} jobs", "employers": [employer], "notify": notify}
    )
    await store.subscriptions.add(spec, owner=user.id)


def titles(sink: HttpSink, path: str) -> list[str]:
    return [str(r.json["title"]) for r in sink.requests if r.path == f"/{path}"]


async def test_owner_and_operator_hear_once_when_a_target_dies_and_once_when_it_recovers(
    kafka: KafkaBroker, http_sink: HttpSink, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    broken = HttpSink()
    broken.start()
    broken.fail_with(500)
    settings = make_settings(tmp_path, kafka.bootstrap)
    settings.delivery = DeliverySettings(
        max_attempts=2, backoff_base_s=0.1, backoff_cap_s=0.5, poll_interval_s=0.1
    )
    settings.operator = OperatorSettings(notify=SecretStr(chat_target(http_sink, "operator")))
    # jobwire's own mail, which tells owners without a working target.
    settings.mail = MailSettings(
        url=SecretStr(f"mailto://127.0.0.1:{smtp_sink.port}?from=jobwire@example.com")
    )
    store = await Store.open(settings.store.url)
    # Ana has a second target that works; Bob has only the one that fails.
    await owned_subscription(
        store,
        "ana@example.com",
        "ACME",
        [chat_target(broken, "ana"), chat_target(http_sink, "ana-phone")],
    )
    await owned_subscription(store, "bob@example.com", "Initech", [chat_target(broken, "bob")])
    topic = settings.kafka.postings_topic

    async def dead(count: int) -> bool:
        return (await store.ledger.counts()).get("dead", 0) >= count

    async def operator_told(count: int) -> bool:
        return len(titles(http_sink, "operator")) >= count

    try:
        async with running(settings) as service:
            await publish_raw(kafka.bootstrap, topic, [posting(n, "ACME") for n in range(3)])
            await publish_raw(kafka.bootstrap, topic, [posting(n, "Initech") for n in range(3)])
            await eventually(lambda: dead(6))
            await eventually(lambda: operator_told(2))
            await asyncio.to_thread(smtp_sink.wait_for, 1, 30.0)
            # Still failing: later alerts probe it, die, and nobody is told again.
            await publish_raw(kafka.bootstrap, topic, [posting(n, "ACME") for n in range(3, 5)])
            await eventually(lambda: dead(8))
            await asyncio.sleep(1.0)  # by design: time for a second notice that must not come

            broken.fail_with(None)
            await publish_raw(kafka.bootstrap, topic, [posting(n, "ACME") for n in range(5, 7)])
            await publish_raw(kafka.bootstrap, topic, [posting(n, "Initech") for n in range(5, 7)])
            await eventually(lambda: operator_told(4))
            await asyncio.to_thread(smtp_sink.wait_for, 2, 30.0)
            await asyncio.sleep(1.0)  # by design: no more notices after the recovery ones
            metrics = service.metrics
    finally:
        await store.close()
        broken.stop()

    # Ana: her alerts on her working target, and two notices there.
    ana = titles(http_sink, "ana-phone")
    assert [t for t in ana if t.startswith("jobwire:")] == [DEAD, RECOVERED]
    assert len(ana) == 2 + 7  # and all seven ACME alerts
    [dead_notice] = [r.json for r in http_sink.requests if r.json["title"] == DEAD]
    assert "500" in dead_notice["message"]
    assert "'ACME jobs'" in dead_notice["message"]
    # Bob, who has no other target: by email, at his user name.
    assert [(m.to, m.subject) for m in smtp_sink.messages] == [
        ("bob@example.com", DEAD),
        ("bob@example.com", RECOVERED),
    ]
    assert "500" in smtp_sink.messages[0].body
    # The operator: one notice of each per target, the dead ones with the reason.
    operator = [r.json for r in http_sink.requests if r.path == "/operator"]
    dead_ones = [n for n in operator if n["title"].startswith("jobwire: target dead: json://")]
    recovered = [n for n in operator if n["title"].startswith("jobwire: target recovered: ")]
    assert (len(dead_ones), len(recovered), len(operator)) == (2, 2, 4)
    assert all("500" in n["message"] for n in dead_ones)
    owners = sorted(o for n in dead_ones for o in ("ana", "bob") if f"owner {o}@" in n["message"])
    assert owners == ["ana", "bob"]
    told = metrics.registry.get_sample_value(
        "jobwire_meta_alerts_total", {"recipient": "owner", "kind": "recovered", "outcome": "sent"}
    )
    assert told == 2
