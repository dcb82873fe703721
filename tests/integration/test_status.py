"""`jobwire status`, run as an operator runs it, against a real broker and store: the group's
instances while jobwire runs, the lag of what was published while it did not, the ledger, the
dead target and the last event; and what it says when Kafka does not answer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import GroupAuthorizationFailedError

from config.settings import DeliverySettings, Settings
from devstack.kafka import KafkaBroker, create_topics_async
from devstack.sinks import HttpSink
from service.operations import status
from service.store import Store
from tests.conftest import make_settings
from tests.integration.conftest import (
    JOBWIRE,
    chat_target,
    eventually,
    posting,
    publish_raw,
    running,
    service_env,
    subscribe,
)

pytestmark = pytest.mark.integration


async def jobwire_status(settings: Settings, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(JOBWIRE),
        "status",
        *args,
        env=service_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def status_json(settings: Settings) -> dict[str, Any]:
    code, out = await jobwire_status(settings, "--json")
    assert code == 0, out
    found: dict[str, Any] = orjson.loads(out)
    return found


async def test_status_shows_the_group_the_lag_the_ledger_and_the_dead_target(
    kafka: KafkaBroker, http_sink: HttpSink, tmp_path: Path
) -> None:
    broken = HttpSink()
    broken.start()
    broken.fail_with(500)
    settings = make_settings(tmp_path, kafka.bootstrap)
    settings.delivery = DeliverySettings(max_attempts=2, backoff_base_s=0.1, backoff_cap_s=0.3)
    await subscribe(settings.store.url, employers=["ACME"], notify=[chat_target(http_sink, "ok")])
    await subscribe(
        settings.store.url,
        employers=["Initech"],
        notify=[chat_target(broken, "hook").replace("json://", "json://bot:secret-pw-81@")],
    )
    topic = settings.kafka.postings_topic
    # Both topics exist before jobwire joins, so its first assignment holds all six partitions.
    await create_topics_async(kafka.bootstrap, [topic, settings.kafka.articles_topic])
    store = await Store.open(settings.store.url)

    async def settled() -> bool:
        return await store.ledger.counts() == {"sent": 5, "dead": 3}

    try:
        async with running(settings):
            await publish_raw(kafka.bootstrap, topic, [posting(n, "ACME") for n in range(5)])
            await publish_raw(kafka.bootstrap, topic, [posting(n, "Initech") for n in range(3)])
            await eventually(settled)
            running_status = await status_json(settings)
        # Published while no instance runs: it waits in Kafka, as the lag says.
        await publish_raw(kafka.bootstrap, topic, [posting(n, "Other") for n in range(4)])
        stopped_status = await status_json(settings)
        code, text = await jobwire_status(settings)
    finally:
        await store.close()
        broken.stop()

    kafka_part = running_status["kafka"]
    assert kafka_part["reachable"] is True
    [instance] = kafka_part["instances"]
    assert instance["client_id"] == "jobwire"
    assert len(instance["partitions"]) == 6  # both topics, three partitions each
    assert kafka_part["total_lag"] == 0

    assert stopped_status["kafka"]["instances"] == []
    assert stopped_status["kafka"]["total_lag"] == 4
    lag = {(p["topic"], p["partition"]): p for p in stopped_status["kafka"]["lag"]}
    assert sum(p["lag"] for (t, _), p in lag.items() if t == topic) == 4
    assert sum(p["end"] for (t, _), p in lag.items() if t == topic) == 12
    store_part = stopped_status["store"]
    assert store_part["ledger"] == {"pending": 0, "sending": 0, "sent": 5, "dead": 3}
    [dead] = store_part["dead_targets"]
    assert dead["dead"] == 3
    assert "500" in dead["last_error"]
    assert "secret-pw-81" not in dead["target"]  # masked
    assert dead["target"].startswith("json://bot:")
    assert store_part["last_event_at"].endswith("Z")

    assert code == 0
    assert "Kafka: reachable; group Empty, 0 instance(s)" in text
    assert "total 4" in text
    assert "Ledger: 0 pending, 0 sending, 5 sent, 3 dead" in text
    assert "Dead targets: 1" in text
    assert "secret-pw-81" not in text


async def test_status_says_kafka_does_not_answer_and_still_shows_the_store(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "127.0.0.1:9")
    await (await Store.open(settings.store.url)).close()
    code, text = await jobwire_status(settings)
    assert code == 1
    assert "Kafka: UNREACHABLE" in text
    assert "JOBWIRE_KAFKA__BOOTSTRAP_SERVERS" in text
    assert "Ledger: 0 pending, 0 sending, 0 sent, 0 dead" in text


async def test_status_of_a_store_that_is_not_there_says_so_and_creates_nothing(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, "127.0.0.1:9")
    mistyped = tmp_path / "jobwrie.db"
    settings.store.url = f"sqlite+aiosqlite:///{mistyped}"
    code, text = await jobwire_status(settings)
    assert code == 1
    assert f"there is no store at {mistyped}" in text
    assert not mistyped.exists()  # a look, not a start


async def test_a_broker_that_answers_then_refuses_is_not_called_unreachable(
    kafka: KafkaBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, kafka.bootstrap)

    async def refused(*args: object) -> object:
        await asyncio.sleep(0.2)  # the broker's answer takes a round trip
        raise GroupAuthorizationFailedError("not allowed to describe group jobwire")

    monkeypatch.setattr(status, "_describe", refused)
    kafka_status = await status._kafka(settings)
    assert not kafka_status.reachable
    assert kafka_status.error is not None
    assert "GroupAuthorizationFailedError" in kafka_status.error
    assert "BOOTSTRAP_SERVERS" not in kafka_status.error
