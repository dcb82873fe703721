"""Settings from the environment, and start-up refused with a message naming the variable."""

from __future__ import annotations

from pathlib import Path

import apprise
import pytest

from config.settings import DEFAULT_SCHEMES, SettingsError, apprise_refuses, load_settings


def test_defaults_work_with_no_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.chdir(str(tmp_path))
    settings = load_settings()
    assert settings.kafka.postings_topic == "jobs.postings"
    assert settings.kafka.articles_topic == "news.articles"
    assert settings.kafka.dead_letter_topic == "jobwire.dead-letter"
    assert settings.store.url.startswith("sqlite+aiosqlite:///")


def test_nested_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWIRE_KAFKA__BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("JOBWIRE_DELIVERY__MAX_ATTEMPTS", "3")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "broker:9092"
    assert settings.delivery.max_attempts == 3


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWIRE_DELIVERY__MAX_ATTEMPTS", "many")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "JOBWIRE_DELIVERY__MAX_ATTEMPTS" in str(caught.value)


def test_schemes_are_a_comma_separated_list_and_secrets_print_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBWIRE_TARGETS__ALLOWED_SCHEMES", "mailtos, Slack,json")
    monkeypatch.setenv("JOBWIRE_API__OPERATOR_KEY", "op-secret-value-0123456789abcdefgh")
    monkeypatch.setenv("JOBWIRE_API__SIGNING_SECRET", "signing-secret-value")
    settings = load_settings()
    assert settings.targets.allowed_schemes == ["mailtos", "slack", "json"]
    assert settings.api.operator_key is not None
    assert settings.api.operator_key.get_secret_value() == "op-secret-value-0123456789abcdefgh"
    printed = repr(settings) + str(settings.model_dump())
    assert "op-secret-value" not in printed
    assert "signing-secret-value" not in printed


def test_a_scheme_apprise_does_not_have_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Apprise dropped msteams; a list that still names it would refuse every Teams target later.
    monkeypatch.setenv("JOBWIRE_TARGETS__ALLOWED_SCHEMES", "mailto,msteams,json")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "JOBWIRE_TARGETS__ALLOWED_SCHEMES" in message
    assert f"Apprise {apprise.__version__} has no scheme 'msteams'" in message
    assert "'mailto'" not in message.split("(got")[0]  # only the unknown one is named


def test_a_scheme_whose_apprise_plugin_is_disabled_says_what_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Apprise's MQTT plugin needs paho-mqtt, which jobwire does not install.
    monkeypatch.setenv("JOBWIRE_TARGETS__ALLOWED_SCHEMES", "mqtt")
    with pytest.raises(SettingsError, match="'mqtt' is disabled here: it needs paho-mqtt"):
        load_settings()


def test_every_default_scheme_is_one_apprise_has() -> None:
    assert [s for s in DEFAULT_SCHEMES if apprise_refuses(s)] == []
    assert "msteams" not in DEFAULT_SCHEMES


def test_sasl_without_credentials_names_each_missing_variable_and_never_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBWIRE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("JOBWIRE_KAFKA__SASL_PASSWORD", "kafka-secret-value")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "JOBWIRE_KAFKA__SASL_USERNAME: Value error, needed with " in message
    assert "JOBWIRE_KAFKA__SECURITY_PROTOCOL=SASL_SSL" in message
    assert "kafka-secret-value" not in message

    monkeypatch.setenv("JOBWIRE_KAFKA__SASL_USERNAME", "svc-jobwire")
    monkeypatch.delenv("JOBWIRE_KAFKA__SASL_PASSWORD")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "JOBWIRE_KAFKA__SASL_PASSWORD: Value error, needed with" in str(caught.value)


def test_credentials_or_a_ca_without_a_protocol_that_uses_them_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The usual slip: credentials set, the protocol left at PLAINTEXT, so they would be ignored.
    monkeypatch.setenv("JOBWIRE_KAFKA__SASL_USERNAME", "svc-jobwire")
    monkeypatch.setenv("JOBWIRE_KAFKA__SASL_PASSWORD", "kafka-secret-value")
    monkeypatch.setenv("JOBWIRE_KAFKA__SSL_CAFILE", str(_ca_file(tmp_path)))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    for variable in ("SASL_USERNAME", "SASL_PASSWORD", "SSL_CAFILE"):
        assert f"JOBWIRE_KAFKA__{variable}: Value error, not used with " in message
    assert "set it to SASL_SSL or SASL_PLAINTEXT" in message
    assert "kafka-secret-value" not in message


def test_a_ca_file_that_is_missing_or_not_pem_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JOBWIRE_KAFKA__SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("JOBWIRE_KAFKA__SSL_CAFILE", str(tmp_path / "missing.pem"))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert f"JOBWIRE_KAFKA__SSL_CAFILE: Value error, no such file: {tmp_path}" in str(caught.value)

    (tmp_path / "ca.pem").write_text("not a certificate\n")
    monkeypatch.setenv("JOBWIRE_KAFKA__SSL_CAFILE", str(tmp_path / "ca.pem"))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "holds no PEM certificate" in str(caught.value)

    monkeypatch.setenv("JOBWIRE_KAFKA__SSL_CAFILE", str(_ca_file(tmp_path)))
    monkeypatch.setenv("JOBWIRE_KAFKA__SSL_CERTFILE", str(_ca_file(tmp_path)))  # no key in it
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "JOBWIRE_KAFKA__SSL_KEYFILE: Value error, JOBWIRE_KAFKA__SSL_CERTFILE and this" in str(
        caught.value
    )


def test_a_managed_kafka_configuration_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(
        "JOBWIRE_KAFKA__BOOTSTRAP_SERVERS", "pkc-1.europe-west1.gcp.confluent.cloud:9092"
    )
    monkeypatch.setenv("JOBWIRE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("JOBWIRE_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("JOBWIRE_KAFKA__SASL_USERNAME", "svc-jobwire")
    monkeypatch.setenv("JOBWIRE_KAFKA__SASL_PASSWORD", "kafka-secret-value")
    monkeypatch.setenv("JOBWIRE_KAFKA__SSL_CAFILE", str(_ca_file(tmp_path)))
    kafka = load_settings().kafka
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == "kafka-secret-value"
    assert "kafka-secret-value" not in repr(kafka) + str(kafka.model_dump())
    assert kafka.ssl_cafile == _ca_file(tmp_path)


def _ca_file(directory: Path) -> Path:
    from devstack.certificates import make_tls_material

    path = directory / "tls" / "ca.pem"
    if not path.is_file():
        make_tls_material(directory / "tls", "unused")
    return path


def test_a_short_operator_key_stops_start_up_with_how_to_make_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBWIRE_API__OPERATOR_KEY", "hunter2-guessable")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "JOBWIRE_API__OPERATOR_KEY" in message
    assert "at least 32 characters" in message
    assert "openssl rand" in message
    assert "hunter2-guessable" not in message


def test_unchecked_schemes_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWIRE_TARGETS__UNCHECKED_SCHEMES", "Zulip, ryver")
    assert load_settings().targets.unchecked_schemes == ["zulip", "ryver"]


@pytest.mark.parametrize(
    "url",
    [
        "mailtos://user:pw@smtp.example.com/ops@example.com?from=jobwire@example.com",
        "mailtos://user:pw@smtp.example.com?from=jobwire@example.com&cc=ops@example.com",
        "mailtos://user:pw@smtp.example.com?from=jobwire@example.com&bcc=ops@example.com",
    ],
)
def test_a_mail_url_with_recipients_of_its_own_is_refused_naming_the_variable(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # They would receive every sign-in link jobwire mails to its users.
    monkeypatch.setenv("JOBWIRE_MAIL__URL", url)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "JOBWIRE_MAIL__URL" in str(refused.value)
    assert "recipients of its own" in str(refused.value)
    assert "pw" not in str(refused.value)


def test_a_mail_url_without_a_recipient_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "mailtos://user:pw@smtp.example.com?from=jobwire@example.com"
    monkeypatch.setenv("JOBWIRE_MAIL__URL", url)
    settings = load_settings()
    assert settings.mail.url is not None
    assert settings.mail.url.get_secret_value() == url
