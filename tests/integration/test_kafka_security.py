"""jobwire against a broker that asks for a password (SASL), TLS or both, as managed Kafka does.

The broker is real (`secure_kafka`: SCRAM and PLAIN users, certificates from a CA made at its
start); so are the chat sink the alerts go to and the dead-letter topic they are read back from.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from config.settings import SecurityProtocol, Settings
from consumers.connection import client_options
from consumers.publish import publish_file
from devstack.certificates import make_tls_material
from devstack.kafka import KafkaBroker
from devstack.sinks import HttpSink
from service.store import Store
from service.subscriptions import SubscriptionIn
from tests.conftest import SAMPLES, make_settings
from tests.integration.conftest import (
    JOBWIRE,
    SASL_PASSWORD,
    SASL_USER,
    chat_target,
    dead_letters,
    running,
    service_env,
)

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "not-the-kafka-pw-5e2a"


def secure_settings(
    tmp_path: Path,
    broker: KafkaBroker,
    protocol: SecurityProtocol,
    mechanism: str = "PLAIN",
    *,
    listener: str | None = None,
    **kafka: object,
) -> Settings:
    """Settings for one test, reaching `broker` through its `listener` (default: `protocol`'s)
    with its user's credentials and CA, unless `kafka` says otherwise."""
    assert broker.tls is not None
    fields: dict[str, object] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        fields |= {
            "sasl_mechanism": mechanism,
            "sasl_username": SASL_USER,
            "sasl_password": SASL_PASSWORD,
        }
    if protocol in ("SSL", "SASL_SSL"):
        fields["ssl_cafile"] = broker.tls.ca_file
    if protocol == "SSL":  # the broker's SSL listener asks for a client certificate
        fields |= {"ssl_certfile": broker.tls.client_cert, "ssl_keyfile": broker.tls.client_key}
    return make_settings(tmp_path, broker.listeners[listener or protocol], **(fields | kafka))


def kafka_env(settings: Settings) -> dict[str, str]:
    """The environment of a `jobwire` process with these settings, security included."""
    env = service_env(settings)
    for name, value in settings.kafka.model_dump().items():
        if name.startswith(("security_", "sasl_", "ssl_")) and value is not None:
            shown = value.get_secret_value() if name == "sasl_password" else str(value)
            env[f"JOBWIRE_KAFKA__{name.upper()}"] = shown
    return env


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SASL_SSL", "SCRAM-SHA-512"), ("SSL", "")],
)
async def test_alerts_and_dead_letters_flow_through_a_secured_listener(
    secure_kafka: KafkaBroker,
    http_sink: HttpSink,
    tmp_path: Path,
    protocol: SecurityProtocol,
    mechanism: str,
) -> None:
    settings = secure_settings(tmp_path, secure_kafka, protocol, mechanism)
    store = await Store.open(settings.store.url)
    await store.subscriptions.add(
        SubscriptionIn(
            employers=["NORDSTROM"], cities=["Portland"], notify=[chat_target(http_sink, "ana")]
        )
    )
    await store.close()
    broken = b'{"id": "broken", "employer": '
    producer = AIOKafkaProducer(**client_options(settings.kafka))
    await producer.start()
    try:
        await producer.send_and_wait(settings.kafka.postings_topic, broken, partition=0)
    finally:
        await producer.stop()
    counts = await publish_file(settings.kafka, SAMPLES)  # what `jobwire publish` does
    assert sum(counts.values()) == 23

    async with running(settings) as service:
        alerts = await asyncio.to_thread(http_sink.wait_for, 2, 60.0)
        dead = await dead_letters(settings.kafka, expected=1)

    assert sorted(str(alert.json["title"]) for alert in alerts) == [
        "New job: Asset Protection - Coordinator - Portland Distribution Center"
        " at NORDSTROM, Portland",
        "New job: Asset Protection Agent - Cascade Station Rack at NORDSTROM, Portland",
    ]
    ((value, headers),) = dead
    assert value == broken
    assert headers["jobwire.error"].startswith("not valid JSON")
    assert headers["jobwire.source.topic"] == settings.kafka.postings_topic
    assert not service.restarts


@pytest.mark.parametrize(
    ("case", "event", "variable"),
    [
        ("wrong password", "consumer.kafka_auth_failed", "JOBWIRE_KAFKA__SASL_PASSWORD"),
        ("another CA", "consumer.kafka_tls_failed", "JOBWIRE_KAFKA__SSL_CAFILE"),
        ("no client certificate", "consumer.kafka_tls_failed", "JOBWIRE_KAFKA__SSL_CERTFILE"),
        ("no TLS", "consumer.kafka_security_mismatch", "JOBWIRE_KAFKA__SECURITY_PROTOCOL"),
    ],
)
async def test_a_refused_connection_logs_one_clear_line_per_attempt_and_backs_off(
    secure_kafka: KafkaBroker, tmp_path: Path, case: str, event: str, variable: str
) -> None:
    if case == "wrong password":
        settings = secure_settings(
            tmp_path, secure_kafka, "SASL_PLAINTEXT", "SCRAM-SHA-256", sasl_password=WRONG_PASSWORD
        )
    elif case == "another CA":
        other = make_tls_material(tmp_path / "other-ca", "unused")
        settings = secure_settings(tmp_path, secure_kafka, "SASL_SSL", ssl_cafile=other.ca_file)
    elif case == "no client certificate":
        settings = secure_settings(
            tmp_path, secure_kafka, "SSL", ssl_certfile=None, ssl_keyfile=None
        )
    else:  # the SASL_SSL port, spoken to without TLS (and with the password)
        settings = secure_settings(tmp_path, secure_kafka, "SASL_PLAINTEXT", listener="SASL_SSL")
    process = await asyncio.create_subprocess_exec(
        str(JOBWIRE),
        "run",
        env=kafka_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            # Attempts at about 0, 1 and 3 s: three lines are enough to see the backoff.
            while sum(1 for line in lines if f'"event":"{event}"'.encode() in line) < 3:
                line = await process.stdout.readline()
                assert line, b"".join(lines).decode()
                lines.append(line)
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(process.communicate(), 30)
    output = b"".join(lines) + rest
    logged = [orjson.loads(line) for line in output.splitlines()]

    # Everything said about Kafka: one line per attempt, with a pause that grows, and
    # aiokafka's own line for the same failure once, not once per attempt.
    about_kafka = [
        line for line in logged if line["logger"].startswith(("jobwire.consumer", "aiokafka"))
    ]
    failures = [line for line in about_kafka if line["event"] == event]
    assert [line["retry_in_s"] for line in failures] == [1.0, 2.0, 4.0]
    assert len(about_kafka) - len(failures) <= 1, Counter(line["event"] for line in about_kafka)
    assert all(variable in line["hint"] for line in failures)
    assert len({line["error"] for line in failures}) == 1
    assert b"Traceback" not in output
    assert SASL_PASSWORD.encode() not in output
    assert WRONG_PASSWORD.encode() not in output
    assert process.returncode == 0
    assert logged[-1]["event"] == "service.stopped"


def test_publish_with_a_confluent_cloud_style_configuration_sends_every_event(
    secure_kafka: KafkaBroker, tmp_path: Path
) -> None:
    settings = secure_settings(tmp_path, secure_kafka, "SASL_SSL", "PLAIN")
    done = subprocess.run(
        [str(JOBWIRE), "publish", str(SAMPLES)],
        env=kafka_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"published 22 to {settings.kafka.postings_topic}",
        f"published 1 to {settings.kafka.articles_topic}",
    ]


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("wrong password", "refused the SASL login"),
        ("no client certificate", "if the broker asks for a client certificate, set "),
    ],
)
def test_publish_that_the_broker_refuses_exits_with_one_line(
    secure_kafka: KafkaBroker, tmp_path: Path, case: str, says: str
) -> None:
    if case == "wrong password":
        settings = secure_settings(tmp_path, secure_kafka, "SASL_SSL", sasl_password=WRONG_PASSWORD)
    else:
        settings = secure_settings(
            tmp_path, secure_kafka, "SSL", ssl_certfile=None, ssl_keyfile=None
        )
    done = subprocess.run(
        [str(JOBWIRE), "publish", str(SAMPLES)],
        env=kafka_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("jobwire: cannot use Kafka: ")
    assert says in line
    assert "JOBWIRE_KAFKA__" in line
    assert WRONG_PASSWORD not in line
    assert SASL_PASSWORD not in line
