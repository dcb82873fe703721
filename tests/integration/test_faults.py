"""Fault injection against the real parts: nothing a subscriber expects may go missing.

Each test prints its figures (events, kills, missing, duplicates, time to recover) so a run
shows how jobwire fared, not only that it passed.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from config.settings import DeliverySettings
from devstack.kafka import KafkaBroker, start_kafka
from devstack.sinks import HttpSink, SmtpSink
from service.store import Store
from tests.conftest import make_settings
from tests.integration.conftest import (
    JOBWIRE,
    chat_target,
    dead_letters,
    eventually,
    mail_target,
    postings,
    publish,
    running,
    service_env,
    subscribe,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def report(capsys: pytest.CaptureFixture[str], name: str, **figures: object) -> None:
    with capsys.disabled():
        shown = ", ".join(f"{key}={value}" for key, value in figures.items())
        print(f"\n[fault figures] {name}: {shown}")


def titles(sink: HttpSink) -> Counter[str]:
    """How often each posting's title arrived in a chat alert ("New job: TITLE at ...")."""
    return Counter(
        str(r.json["title"]).removeprefix("New job: ").rsplit(" at ", 1)[0] for r in sink.requests
    )


async def test_sigkill_at_random_moments_loses_no_alert(
    kafka: KafkaBroker, http_sink: HttpSink, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, kafka.bootstrap)
    await subscribe(
        settings.store.url, employers=["ACME"], notify=[chat_target(http_sink, "crash")]
    )
    env = service_env(settings)
    rng = random.Random(20201008)
    log = (tmp_path / "jobwire.log").open("ab")
    expected: set[str] = set()
    kills = 0

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(JOBWIRE), "run"], env=env, stdout=log, stderr=log)

    for wave in range(5):
        process = start()
        matching = postings(f"w{wave}", 120)
        expected.update(str(e["title"]) for e in matching)
        await publish(kafka.bootstrap, settings.kafka.postings_topic, matching)
        await publish(
            kafka.bootstrap, settings.kafka.postings_topic, postings(f"o{wave}", 30, "Other Co")
        )
        await asyncio.sleep(rng.uniform(0.5, 3.0))  # a random moment, by design
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1

    started = time.monotonic()
    process = start()
    try:

        async def all_arrived() -> bool:
            return expected <= set(titles(http_sink))

        await eventually(all_arrived, within_s=120)
        recovered_s = time.monotonic() - started
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(30)
        log.close()

    received = titles(http_sink)
    missing = expected - set(received)
    duplicates = sum(n - 1 for n in received.values())
    unexpected = set(received) - expected
    report(
        capsys,
        "crash",
        events=len(expected) + 5 * 30,
        expected_alerts=len(expected),
        kills=kills,
        missing=len(missing),
        duplicates=duplicates,
        seconds_to_drain_after_last_restart=round(recovered_s, 1),
    )
    assert not missing
    assert not unexpected
    # Only sends in flight at a kill can be repeated: at most `concurrency` per kill.
    assert duplicates <= kills * DeliverySettings().concurrency
    assert exit_code == 0


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker this test may kill without disturbing the others."""
    broker = start_kafka(tmp_path / "kafka")
    yield broker
    broker.stop()


async def test_jobwire_keeps_going_across_a_broker_restart(
    own_broker: KafkaBroker,
    http_sink: HttpSink,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(tmp_path, own_broker.bootstrap)
    await subscribe(
        settings.store.url, employers=["ACME"], notify=[chat_target(http_sink, "restart")]
    )
    before, after = postings("before", 50), postings("after", 50)

    async with running(settings):
        await publish(own_broker.bootstrap, settings.kafka.postings_topic, before)
        await asyncio.to_thread(http_sink.wait_for, 50, 60.0)
        await asyncio.to_thread(own_broker.kill)
        down_at = time.monotonic()
        await asyncio.to_thread(own_broker.restart)
        back_at = time.monotonic()
        await publish(own_broker.bootstrap, settings.kafka.postings_topic, after)
        await asyncio.to_thread(http_sink.wait_for, 100, 120.0)
        first_after = time.monotonic()

    received = titles(http_sink)
    expected = {str(e["title"]) for e in before + after}
    report(
        capsys,
        "broker restart",
        events=100,
        missing=len(expected - set(received)),
        duplicates=sum(n - 1 for n in received.values()),
        broker_down_s=round(back_at - down_at, 1),
        seconds_from_broker_back_to_all_alerts=round(first_after - back_at, 1),
    )
    assert set(received) == expected


async def test_a_target_outage_delays_only_that_target_and_a_dead_one_ends_dead(
    kafka: KafkaBroker,
    smtp_sink: SmtpSink,
    http_sink: HttpSink,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = HttpSink()
    broken.start()
    broken.fail_with(500)
    settings = make_settings(tmp_path, kafka.bootstrap)
    settings.delivery = DeliverySettings(
        max_attempts=12, backoff_base_s=0.3, backoff_cap_s=1.0, poll_interval_s=0.1
    )
    await subscribe(
        settings.store.url, employers=["ACME"], notify=[mail_target(smtp_sink, "ops@example.com")]
    )
    await subscribe(
        settings.store.url, employers=["ACME"], notify=[chat_target(http_sink, "healthy")]
    )
    await subscribe(settings.store.url, employers=["ACME"], notify=[chat_target(broken, "never")])
    events = postings("outage", 20)
    smtp_sink.stop()  # the mail server is down when the alerts are due

    try:
        async with running(settings):
            started = time.monotonic()
            await publish(kafka.bootstrap, settings.kafka.postings_topic, events)
            await asyncio.to_thread(http_sink.wait_for, 20, 30.0)
            healthy_s = time.monotonic() - started
            await asyncio.sleep(1.0)  # an outage of a second or so, by design
            smtp_sink.start()
            restored = time.monotonic()
            await asyncio.to_thread(smtp_sink.wait_for, 20, 60.0)
            mail_recovered_s = time.monotonic() - restored
            store = await Store.open(settings.store.url)

            async def broken_is_dead() -> bool:
                return len(await store.ledger.recent(status="dead")) == 20

            await eventually(broken_is_dead, within_s=60)
            dead = await store.ledger.recent(status="dead")
            counts = await store.ledger.counts()
            await store.close()
    finally:
        broken.stop()

    report(
        capsys,
        "target outage",
        events=20,
        healthy_target_all_alerts_s=round(healthy_s, 2),
        mail_after_recovery_s=round(mail_recovered_s, 2),
        mails=len(smtp_sink.messages),
        dead=len(dead),
        attempts_on_dead_target=broken.rejected,
    )
    assert len({m.subject for m in smtp_sink.messages}) == 20
    assert len(smtp_sink.messages) == 20
    assert counts == {"sent": 40, "dead": 20}
    assert all("500" in str(d.last_error) for d in dead)
    assert all("never" in d.target for d in dead)
    # One alert probes a failing target while the rest wait: the dead target saw fewer
    # attempts than there were alerts for it, not 20 x max_attempts.
    assert broken.rejected < 20


def poison(rng: random.Random) -> bytes:
    """A malformed posting, of one of the kinds real producers get wrong."""
    shape = rng.randrange(6)
    if shape == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if shape == 1:
        return b'{"id": "' + str(rng.random()).encode()  # cut off mid-message
    if shape == 2:
        return orjson.dumps({"id": "x", "title": "Agent", "city": "Portland"})  # no employer
    if shape == 3:
        return orjson.dumps([rng.random(), "not an object"])
    if shape == 4:
        return orjson.dumps({"id": 7, "employer": {"name": "ACME"}, "title": 1, "city": None})
    return b""


async def test_thousands_of_malformed_messages_are_dead_lettered_and_valid_ones_alerted(
    kafka: KafkaBroker, http_sink: HttpSink, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, kafka.bootstrap)
    await subscribe(
        settings.store.url, employers=["ACME"], notify=[chat_target(http_sink, "poison")]
    )
    rng = random.Random(7)
    valid = postings("valid", 300)
    bad_count = 3000
    stream: list[bytes] = [orjson.dumps(e) for e in valid] + [poison(rng) for _ in range(bad_count)]
    rng.shuffle(stream)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    sent = [await producer.send(settings.kafka.postings_topic, value) for value in stream]
    await asyncio.gather(*sent)
    await producer.stop()

    started = time.monotonic()
    async with running(settings) as service:
        await asyncio.to_thread(http_sink.wait_for, 300, 120.0)
        dead = [h["jobwire.error"] for _, h in await dead_letters(settings.kafka, bad_count)]
        took = time.monotonic() - started

    received = titles(http_sink)
    report(
        capsys,
        "poison",
        valid=len(valid),
        malformed=bad_count,
        dead_lettered=len(dead),
        alerted=len(received),
        seconds=round(took, 1),
    )
    assert set(received) == {str(e["title"]) for e in valid}
    assert len(dead) == bad_count
    assert all(reason for reason in dead)
    assert not service.restarts  # the consumer never fell over


async def test_sigterm_stops_cleanly_after_committing(
    kafka: KafkaBroker, http_sink: HttpSink, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, kafka.bootstrap)
    await subscribe(settings.store.url, employers=["ACME"], notify=[chat_target(http_sink, "term")])
    process = await asyncio.create_subprocess_exec(
        str(JOBWIRE),
        "run",
        env=service_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    await publish(kafka.bootstrap, settings.kafka.postings_topic, postings("term", 10))
    await asyncio.to_thread(http_sink.wait_for, 10, 60.0)
    process.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    lines = [orjson.loads(line) for line in out.splitlines() if line.startswith(b"{")]
    events = [line["event"] for line in lines]
    assert process.returncode == 0
    assert "consumer.committed" in events
    assert events.index("service.stopping") < events.index("consumer.stopped")
    assert events[-1] == "service.stopped"
    # Leaving says which group and topics, as joining did (the README's logs table).
    started, stopped = (
        next(x for x in lines if x["event"] == e) for e in ("consumer.started", "consumer.stopped")
    )
    assert (stopped["topics"], stopped["group_id"]) == (started["topics"], started["group_id"])
    assert stopped["group_id"] == settings.kafka.group_id
