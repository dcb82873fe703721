"""The one place Kafka clients get their connection settings from (the brokers are in
tests/integration/test_kafka_security.py)."""

from __future__ import annotations

import inspect
import ssl
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from config.settings import KafkaSettings
from consumers.connection import _tls_error, client_options
from devstack.certificates import make_tls_material


def test_plaintext_options_are_aiokafkas_defaults_so_the_default_path_is_unchanged() -> None:
    options = client_options(KafkaSettings(bootstrap_servers="broker:9092"))
    assert options.pop("bootstrap_servers") == "broker:9092"
    for client in (AIOKafkaConsumer, AIOKafkaProducer, AIOKafkaAdminClient):
        defaults = inspect.signature(client).parameters
        assert {name: defaults[name].default for name in options} == options, client


def test_sasl_ssl_sends_the_credentials_over_tls_that_checks_the_brokers_name(
    tmp_path: Path,
) -> None:
    tls = make_tls_material(tmp_path, "unused")
    options = client_options(
        KafkaSettings(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="svc-jobwire",
            sasl_password="kafka-secret-value",  # type: ignore[arg-type]
            ssl_cafile=tls.ca_file,
        )
    )
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "svc-jobwire"
    assert options["sasl_plain_password"] == "kafka-secret-value"
    context = options["ssl_context"]
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [cert["subject"] for cert in context.get_ca_certs()] == [
        ((("commonName", "jobwire devstack CA"),),)
    ]


def test_sasl_plaintext_has_no_tls_and_ssl_has_no_credentials(tmp_path: Path) -> None:
    sasl = client_options(
        KafkaSettings(
            security_protocol="SASL_PLAINTEXT",
            sasl_username="svc-jobwire",
            sasl_password="kafka-secret-value",  # type: ignore[arg-type]
        )
    )
    assert sasl["ssl_context"] is None
    assert sasl["sasl_mechanism"] == "PLAIN"
    tls = make_tls_material(tmp_path, "unused")
    mutual = client_options(
        KafkaSettings(
            security_protocol="SSL",
            ssl_cafile=tls.ca_file,
            ssl_certfile=tls.client_cert,
            ssl_keyfile=tls.client_key,
        )
    )
    assert mutual["ssl_context"] is not None
    assert (mutual["sasl_plain_username"], mutual["sasl_plain_password"]) == (None, None)


def test_a_tls_error_behind_a_closed_connection_is_found() -> None:
    refused = ssl.SSLCertVerificationError("certificate verify failed")
    closed = ConnectionError("connection closed")
    closed.__cause__ = refused
    assert _tls_error(closed) is refused


def test_an_exception_chain_that_loops_is_walked_to_an_end() -> None:
    # Seen in the wild: a cause whose context leads back to it. The walk must end.
    first, second = OSError("first"), OSError("second")
    first.__cause__, second.__context__ = second, first
    assert _tls_error(first) is None
