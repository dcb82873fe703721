"""Settings from the environment, and start-up refused with a message naming the variable."""

from __future__ import annotations

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
    monkeypatch.setenv("JOBWIRE_API__OPERATOR_KEY", "op-secret-value")
    monkeypatch.setenv("JOBWIRE_API__SIGNING_SECRET", "signing-secret-value")
    settings = load_settings()
    assert settings.targets.allowed_schemes == ["mailtos", "slack", "json"]
    assert settings.api.operator_key is not None
    assert settings.api.operator_key.get_secret_value() == "op-secret-value"
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
